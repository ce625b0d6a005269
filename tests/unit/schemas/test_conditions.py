"""Conditions as configuration: field names, which operators each field takes, regexes checked by RE2,
dates for `received`, and a rule's `created_at`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from runtime.loading import parse_config
from schemas.conditions import (
    REGEX_MAX_MEM,
    Condition,
    ConditionField,
    HeaderField,
    compile_regex,
    parse_moment,
)
from schemas.config import AutoResponseRule
from schemas.errors import ConfigError
from tests.unit.builders import condition


@pytest.mark.parametrize("name", [f.value for f in ConditionField])
def test_every_field_is_written_by_its_name(name: str) -> None:
    operator = {"has_attachments": "is_true", "received": "before"}.get(name, "contains")
    value = {"has_attachments": None, "received": "2024-05-01"}.get(name, "x")

    assert condition(name, operator, value).field is ConditionField(name)


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("header:X-Priority", "x-priority"),
        ("header:x-priority", "x-priority"),
        ("header: X-Spam-Flag ", "x-spam-flag"),
        ("header:List-Id", "list-id"),
        ("header:Subject", "subject"),
    ],
)
def test_a_header_field_is_named_case_insensitively(written: str, name: str) -> None:
    made = condition(written, "contains", "x")

    assert made.field == HeaderField(name)
    assert made.model_dump()["field"] == f"header:{name}"
    assert Condition.model_validate_json(made.model_dump_json()) == made


@pytest.mark.parametrize(
    "written", ["priority", "Subject", "header", "header:", "header:  ", "header:X Priority", "headers:X-A"]
)
def test_an_unknown_field_is_rejected(written: str) -> None:
    with pytest.raises(ValidationError, match="unknown field: use one of subject, body") as caught:
        condition(written, "contains", "x")

    assert [err["loc"] for err in caught.value.errors()] == [("field",)]


@pytest.mark.parametrize(
    ("field", "operator", "value"),
    [
        ("has_attachments", "is_true", None),
        ("has_attachments", "is_false", None),
        ("has_attachments", "is_true", ""),
        ("received", "before", "2024-05-01"),
        ("received", "after", "2024-05-01T09:30:00+02:00"),
        ("received", "after", "2024-05-01T09:30:00Z"),
        ("received", "before", date(2024, 5, 1)),
        ("received", "before", datetime(2024, 5, 1, 9, 30)),
        ("subject", "matches_regex", r"^(re|aw):\s*invoice \d+$"),
        ("body", "does_not_match_regex", r"\bunsubscribe\b"),
        ("header:X-Priority", "matches_regex", "[12]"),
        ("bcc", "is_empty", None),
        ("reply_to", "is_any_of", ["a@x.example"]),
    ],
)
def test_a_field_takes_its_own_operators(field: str, operator: str, value: Any) -> None:
    made = condition(field, operator, value)

    assert made.operator == operator


@pytest.mark.parametrize(
    ("field", "operator", "value", "message"),
    [
        ("has_attachments", "contains", "x", "field has_attachments takes operator is_true or is_false"),
        ("has_attachments", "is_empty", None, "takes operator is_true or is_false, not is_empty"),
        ("has_attachments", "is_true", "yes", "operator is_true takes no value, got 'yes'"),
        ("received", "contains", "2024", "field received takes operator before or after, not contains"),
        ("received", "is_not_empty", None, "field received takes operator before or after"),
        ("received", "before", None, "operator before needs a non-empty text value"),
        ("received", "after", "tomorrow", "operator after needs an ISO date or date-time"),
        ("received", "after", "2024-13-01", "got '2024-13-01'"),
        ("subject", "is_true", None, "operator is_true is for field has_attachments only"),
        ("from", "is_false", None, "operator is_false is for field has_attachments only"),
        ("body", "before", "2024-05-01", "operator before is for field received only"),
        ("header:Date", "after", "2024-05-01", "operator after is for field received only"),
        ("subject", "matches_regex", None, "operator matches_regex needs a non-empty text value"),
        ("subject", "matches_regex", ["a", "b"], "operator matches_regex needs a non-empty text value"),
        ("subject", "does_not_match_regex", "", "needs a non-empty text value"),
    ],
)
def test_a_field_refuses_other_operators_and_values(
    field: str, operator: str, value: Any, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        condition(field, operator, value)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(invoice", "invalid regular expression '(invoice': missing ): (invoice"),
        ("[a-", "invalid regular expression '[a-': missing ]: [a-"),
        ("a{1001}", "invalid regular expression 'a{1001}': invalid repetition size: {1001}"),
        # What RE2 leaves out to stay linear: look-around and back-references.
        ("invoice(?=s)", "invalid regular expression 'invoice(?=s)': invalid perl operator: (?="),
        (r"(a)\1", "invalid regular expression"),
        (r"\pL{1000}", "is too large: it needs more than 1 MiB compiled"),
    ],
)
@pytest.mark.parametrize("operator", ["matches_regex", "does_not_match_regex"])
def test_a_regex_that_is_invalid_or_too_large_is_refused(operator: str, pattern: str, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        condition("subject", operator, pattern)


def test_regexes_are_compiled_once_with_a_memory_cap() -> None:
    made = condition("subject", "matches_regex", r"invoice \d+")

    assert made.regex() is condition("body", "matches_regex", r"invoice \d+").regex()
    assert made.regex() is not condition("subject", "matches_regex", r"invoice \d+", True).regex()
    assert REGEX_MAX_MEM == 1 << 20


@pytest.mark.parametrize(
    ("case_sensitive", "text", "found"),
    [
        (False, b"INVOICE 12", True),
        (False, b"Invoice 12", True),
        (True, b"INVOICE 12", False),
        (True, b"invoice 12", True),
    ],
)
def test_a_regex_ignores_case_unless_told(case_sensitive: bool, text: bytes, found: bool) -> None:
    assert (compile_regex(r"invoice \d+", case_sensitive).search(text) is not None) is found


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        (" 2024-05-01 ", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T09:30", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01T09:30:00Z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01T09:30:00+02:00", datetime(2024, 5, 1, 7, 30, tzinfo=UTC)),
    ],
)
def test_a_moment_is_a_date_at_midnight_utc_or_a_datetime_in_utc_unless_it_has_an_offset(
    text: str, moment: datetime
) -> None:
    parsed = parse_moment(text)

    assert parsed == moment
    assert parsed.utcoffset() is not None


def test_a_yaml_date_is_kept_as_the_text_it_stands_for() -> None:
    made = condition("received", "before", date(2024, 5, 1))

    assert made.value == "2024-05-01"
    assert made.moment() == datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("created_at", "expected"),
    [
        (None, None),
        (datetime(2024, 5, 1, 9, 0), datetime(2024, 5, 1, 9, 0, tzinfo=UTC)),
        (
            datetime(2024, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2024, 5, 1, 7, 0, tzinfo=UTC),
        ),
        ("2024-05-01T09:00:00Z", datetime(2024, 5, 1, 9, 0, tzinfo=UTC)),
        (date(2024, 5, 1), datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_a_rule_is_created_at_a_moment_in_utc_unless_it_has_an_offset(
    created_at: Any, expected: datetime | None
) -> None:
    made = AutoResponseRule(id="ack", name="Ack", template="thanks", created_at=created_at)

    assert made.created_at == expected
    assert made.created_at is None or made.created_at.utcoffset() is not None


CONFIG = """
mailboxes:
  - id: support
    organization: acme
    label: Support
    email: support@acme.example
    imap: {host: h, username: u, password: p}
    smtp: {host: h}
  - id: sales
    organization: acme
    label: Sales
    email: sales@acme.example
    imap: {host: h, username: u, password: p}
    smtp: {host: h}
    rules:
      - id: ack
        name: Ack
        template: {subject: s, body: b}
      - id: urgent
        name: Urgent
        created_at: 2024-05-01T09:00:00Z
        template: {subject: s, body: b}
        conditions:
          - {field: subject, operator: contains, value: urgent}
          - {field: received, operator: after, value: 2024-05-01}
          - {field: body, operator: matches_regex, value: PATTERN}
"""


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ('"(invoice"', "invalid regular expression '(invoice': missing ): (invoice"),
        ("'\\pL{1000}'", "is too large: it needs more than 1 MiB compiled"),
    ],
)
def test_a_bad_regex_in_a_file_names_the_mailbox_the_rule_and_the_condition(
    pattern: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.replace("PATTERN", pattern), origin="mailroom.yaml")

    heading, line = str(caught.value).splitlines()
    assert heading == "mailroom.yaml: invalid configuration:"
    assert line.startswith("  mailboxes[1](sales).rules[1](urgent).conditions[2]: ")
    assert message in line


def test_new_fields_operators_and_created_at_load_from_yaml() -> None:
    box = parse_config(CONFIG.replace("PATTERN", r"'invoice\s+\d+'")).mailboxes[1]
    urgent = box.rules[1]

    assert urgent.created_at == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert urgent.conditions[1].moment() == datetime(2024, 5, 1, tzinfo=UTC)
    assert urgent.conditions[2].regex().search(b"INVOICE  42") is not None
    assert box.rules[0].created_at is None
