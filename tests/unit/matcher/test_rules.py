"""Rule conditions: every operator on every field, case folding, recipient lists, rule order and policy."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from matcher.rules import LetterView, compile_rules
from runtime.loading import parse_config
from schemas.config import AutoResponseRule, Condition, ReplyPolicy
from schemas.events import Address
from tests.unit.builders import condition, mailbox, rule

ANN = Address(name="Ann Lee", address="ann@customer.example")
BOB = Address(address="bob@partner.example")
SUPPORT = Address(name="Acme Support", address="support@acme.example")
CARA = Address(name="Cara Straße", address="cara@acme.example")
DAN = Address(name="Dan İnce", address="dan@acme.example")
ANN_AT_HOME = Address(name="Ann", address="ann@home.example")
RECEIVED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

LETTER = LetterView(
    received=RECEIVED,
    subject="URGENT: printer broken",
    body="Hello,\nthe printer on floor 2 is broken.\nThanks",
    sender=ANN,
    to=(SUPPORT, CARA),
    cc=(BOB,),
    bcc=(DAN,),
    reply_to=(ANN_AT_HOME,),
    headers={
        "x-priority": ("1 (Highest)",),
        "x-mailer": ("=?utf-8?q?Gr=C3=BC=C3=9Fe_Mail_=C4=B0stanbul?=",),
        "x-tag": ("alpha", "beta"),
        "x-blank": ("",),
    },
    has_attachments=True,
)
EMPTY = LetterView(received=RECEIVED)


def _letter(**fields: Any) -> LetterView:
    return replace(LETTER, **fields)


def holds(made: Condition, letter: LetterView = LETTER) -> bool:
    outcomes, chosen = compile_rules(mailbox(rule("r", made))).evaluate(letter)
    assert outcomes[0].matched is bool(chosen)
    return outcomes[0].matched


CS = {"case_sensitive": True}

# (field, operator, value, extra condition settings, letter, expected)
CASES: list[tuple[str, str, Any, dict[str, Any], LetterView, bool]] = [
    # subject
    ("subject", "contains", "urgent", {}, LETTER, True),
    ("subject", "contains", "printer b", {}, LETTER, True),
    ("subject", "contains", "scanner", {}, LETTER, False),
    ("subject", "contains", "urgent", CS, LETTER, False),
    ("subject", "contains", "URGENT", CS, LETTER, True),
    ("subject", "does_not_contain", "scanner", {}, LETTER, True),
    ("subject", "does_not_contain", "urgent", {}, LETTER, False),
    ("subject", "does_not_contain", "urgent", CS, LETTER, True),
    ("subject", "is_equal_to", "urgent: printer broken", {}, LETTER, True),
    ("subject", "is_equal_to", "urgent", {}, LETTER, False),
    ("subject", "is_equal_to", "URGENT: printer broken", CS, LETTER, True),
    ("subject", "is_equal_to", "urgent: printer broken", CS, LETTER, False),
    ("subject", "starts_with", "urgent:", {}, LETTER, True),
    ("subject", "starts_with", "printer", {}, LETTER, False),
    ("subject", "starts_with", "urgent", CS, LETTER, False),
    ("subject", "ends_with", "BROKEN", {}, LETTER, True),
    ("subject", "ends_with", "printer", {}, LETTER, False),
    ("subject", "ends_with", "BROKEN", CS, LETTER, False),
    ("subject", "is_any_of", ["hello", "urgent: printer broken"], {}, LETTER, True),
    ("subject", "is_any_of", "hello, Urgent: Printer Broken", {}, LETTER, True),
    ("subject", "is_any_of", ["urgent"], {}, LETTER, False),
    ("subject", "is_any_of", ["urgent: printer broken"], CS, LETTER, False),
    ("subject", "is_not_any_of", ["hello"], {}, LETTER, True),
    ("subject", "is_not_any_of", "hello, URGENT: PRINTER BROKEN", {}, LETTER, False),
    ("subject", "is_empty", None, {}, LETTER, False),
    ("subject", "is_not_empty", None, {}, LETTER, True),
    # empty and blank subjects
    ("subject", "is_empty", None, {}, EMPTY, True),
    ("subject", "is_empty", None, {}, _letter(subject="   "), True),
    ("subject", "is_not_empty", None, {}, EMPTY, False),
    ("subject", "contains", "x", {}, EMPTY, False),
    ("subject", "does_not_contain", "x", {}, EMPTY, True),
    ("subject", "is_equal_to", "x", {}, EMPTY, False),
    ("subject", "starts_with", "x", {}, EMPTY, False),
    ("subject", "ends_with", "x", {}, EMPTY, False),
    ("subject", "is_any_of", ["x"], {}, EMPTY, False),
    ("subject", "is_not_any_of", ["x"], {}, EMPTY, True),
    # German sharp s: ß casefolds to ss
    ("subject", "contains", "STRASSE", {}, _letter(subject="Hauptstraße 5"), True),
    ("subject", "contains", "straße", {}, _letter(subject="HAUPTSTRASSE 5"), True),
    ("subject", "is_equal_to", "HAUPTSTRASSE 5", {}, _letter(subject="Hauptstraße 5"), True),
    ("subject", "starts_with", "straß", {}, _letter(subject="STRASSE"), True),
    ("subject", "is_any_of", ["maße", "grüße"], {}, _letter(subject="GRÜSSE"), True),
    ("subject", "contains", "STRASSE", CS, _letter(subject="Hauptstraße 5"), False),
    ("subject", "does_not_contain", "strasse", {}, _letter(subject="Hauptstraße"), False),
    # Turkish dotted İ: casefold gives i + U+0307, which mailroom folds on to a plain i
    ("subject", "contains", "İSTANBUL", {}, _letter(subject="İstanbul office"), True),
    ("subject", "is_equal_to", "i\u0307stanbul office", {}, _letter(subject="İSTANBUL OFFICE"), True),
    ("subject", "starts_with", "İst", {}, _letter(subject="İSTANBUL"), True),
    ("subject", "is_equal_to", "istanbul", {}, _letter(subject="İstanbul"), True),
    ("subject", "is_equal_to", "k\u0131z", {}, _letter(subject="KIZ"), False),
    ("subject", "contains", "İstanbul", CS, _letter(subject="İSTANBUL"), False),
    # body
    ("body", "contains", "floor 2", {}, LETTER, True),
    ("body", "contains", "FLOOR 2", {}, LETTER, True),
    ("body", "contains", "broken.\nthanks", {}, LETTER, True),
    ("body", "contains", "FLOOR", CS, LETTER, False),
    ("body", "does_not_contain", "floor", {}, LETTER, False),
    ("body", "does_not_contain", "invoice", {}, LETTER, True),
    ("body", "is_equal_to", "hello,\nthe printer on floor 2 is broken.\nthanks", {}, LETTER, True),
    ("body", "is_equal_to", "hello", {}, LETTER, False),
    ("body", "starts_with", "HELLO", {}, LETTER, True),
    ("body", "starts_with", "HELLO", CS, LETTER, False),
    ("body", "ends_with", "thanks", {}, LETTER, True),
    ("body", "ends_with", "broken.", {}, LETTER, False),
    ("body", "is_any_of", ["hello"], {}, LETTER, False),
    ("body", "is_any_of", ["yes", "no"], {}, _letter(body="YES"), True),
    ("body", "is_not_any_of", ["yes", "no"], {}, _letter(body="YES"), False),
    ("body", "is_empty", None, {}, LETTER, False),
    ("body", "is_not_empty", None, {}, LETTER, True),
    ("body", "is_empty", None, {}, _letter(body=""), True),
    ("body", "is_empty", None, {}, _letter(body=" \n\t "), True),
    ("body", "is_not_empty", None, {}, _letter(body=""), False),
    ("body", "contains", "x", {}, _letter(body=""), False),
    ("body", "does_not_contain", "x", {}, _letter(body=""), True),
    ("body", "contains", "GRÜSSE", {}, _letter(body="Viele Grüße"), True),
    # from: the display name or the address
    ("from", "contains", "customer", {}, LETTER, True),
    ("from", "contains", "lee", {}, LETTER, True),
    ("from", "contains", "bob", {}, LETTER, False),
    ("from", "contains", "ann lee", CS, LETTER, False),
    ("from", "contains", "Ann Lee", CS, LETTER, True),
    ("from", "does_not_contain", "lee", {}, LETTER, False),
    ("from", "does_not_contain", "customer", {}, LETTER, False),
    ("from", "does_not_contain", "zed", {}, LETTER, True),
    ("from", "is_equal_to", "ann lee", {}, LETTER, True),
    ("from", "is_equal_to", "ANN@customer.example", {}, LETTER, True),
    ("from", "is_equal_to", "ann", {}, LETTER, False),
    ("from", "is_equal_to", "ANN@customer.example", CS, LETTER, False),
    ("from", "starts_with", "ann", {}, LETTER, True),
    ("from", "starts_with", "lee", {}, LETTER, False),
    ("from", "ends_with", "@customer.example", {}, LETTER, True),
    ("from", "ends_with", "LEE", {}, LETTER, True),
    ("from", "ends_with", "@partner.example", {}, LETTER, False),
    ("from", "is_any_of", "bob@partner.example, ann@customer.example", {}, LETTER, True),
    ("from", "is_any_of", ["Ann Lee"], {}, LETTER, True),
    ("from", "is_any_of", ["ann"], {}, LETTER, False),
    ("from", "is_not_any_of", ["ann@customer.example"], {}, LETTER, False),
    ("from", "is_not_any_of", "bob@partner.example", {}, LETTER, True),
    ("from", "is_empty", None, {}, LETTER, False),
    ("from", "is_not_empty", None, {}, LETTER, True),
    ("from", "contains", "bob", {}, _letter(sender=BOB), True),
    ("from", "is_equal_to", "bob@partner.example", {}, _letter(sender=BOB), True),
    ("from", "is_empty", None, {}, EMPTY, True),
    ("from", "is_not_empty", None, {}, EMPTY, False),
    ("from", "contains", "a", {}, EMPTY, False),
    ("from", "does_not_contain", "a", {}, EMPTY, True),
    ("from", "is_not_any_of", ["a@x"], {}, EMPTY, True),
    ("from", "contains", "STRASSE", {}, _letter(sender=CARA), True),
    # to: any one recipient, by name or address
    ("to", "contains", "cara", {}, LETTER, True),
    ("to", "contains", "STRASSE", {}, LETTER, True),
    ("to", "contains", "partner", {}, LETTER, False),
    ("to", "contains", "CARA", CS, LETTER, False),
    ("to", "does_not_contain", "cara", {}, LETTER, False),
    ("to", "does_not_contain", "zed", {}, LETTER, True),
    ("to", "is_equal_to", "cara@acme.example", {}, LETTER, True),
    ("to", "is_equal_to", "acme support", {}, LETTER, True),
    ("to", "is_equal_to", "acme", {}, LETTER, False),
    ("to", "starts_with", "cara", {}, LETTER, True),
    ("to", "starts_with", "acme.example", {}, LETTER, False),
    ("to", "ends_with", "support", {}, LETTER, True),
    ("to", "ends_with", "@partner.example", {}, LETTER, False),
    ("to", "is_any_of", ["x@y.example", "support@acme.example"], {}, LETTER, True),
    ("to", "is_any_of", "nobody@x.example, other@y.example", {}, LETTER, False),
    ("to", "is_not_any_of", ["cara@acme.example"], {}, LETTER, False),
    ("to", "is_not_any_of", "zed@x.example", {}, LETTER, True),
    ("to", "is_empty", None, {}, LETTER, False),
    ("to", "is_not_empty", None, {}, LETTER, True),
    ("to", "is_empty", None, {}, EMPTY, True),
    ("to", "is_not_empty", None, {}, EMPTY, False),
    ("to", "contains", "a", {}, EMPTY, False),
    ("to", "does_not_contain", "a", {}, EMPTY, True),
    ("to", "is_not_any_of", ["a@x"], {}, EMPTY, True),
    (
        "to",
        "is_equal_to",
        "last@x.example",
        {},
        _letter(
            to=(*(Address(address=f"r{i}@x.example") for i in range(50)), Address(address="last@x.example"))
        ),
        True,
    ),
    # cc: the same rules as to
    ("cc", "contains", "partner", {}, LETTER, True),
    ("cc", "contains", "cara", {}, LETTER, False),
    ("cc", "contains", "BOB", CS, LETTER, False),
    ("cc", "does_not_contain", "bob", {}, LETTER, False),
    ("cc", "does_not_contain", "cara", {}, LETTER, True),
    ("cc", "is_equal_to", "BOB@partner.example", {}, LETTER, True),
    ("cc", "is_equal_to", "BOB@partner.example", CS, LETTER, False),
    ("cc", "starts_with", "bob@", {}, LETTER, True),
    ("cc", "ends_with", ".example", {}, LETTER, True),
    ("cc", "ends_with", ".com", {}, LETTER, False),
    ("cc", "is_any_of", "bob@partner.example", {}, LETTER, True),
    ("cc", "is_not_any_of", ["bob@partner.example"], {}, LETTER, False),
    ("cc", "is_not_any_of", ["ann@customer.example"], {}, LETTER, True),
    ("cc", "is_empty", None, {}, LETTER, False),
    ("cc", "is_not_empty", None, {}, LETTER, True),
    ("cc", "is_empty", None, {}, EMPTY, True),
    ("cc", "is_not_empty", None, {}, EMPTY, False),
    ("cc", "contains", "bob", {}, _letter(cc=(ANN, SUPPORT, BOB)), True),
    ("cc", "does_not_contain", "bob", {}, _letter(cc=(ANN, SUPPORT)), True),
]


@pytest.mark.parametrize(
    ("field", "operator", "value", "extra", "letter", "expected"),
    CASES,
    ids=[f"{c[0]} {c[1]} {c[2]!r}{' cs' if c[3] else ''} #{i}" for i, c in enumerate(CASES)],
)
def test_condition(
    field: str, operator: str, value: Any, extra: dict[str, Any], letter: LetterView, expected: bool
) -> None:
    assert holds(condition(field, operator, value, **extra), letter) is expected


def test_every_operator_is_covered_on_every_field() -> None:
    covered = {(c[0], c[1]) for c in CASES}

    for field in ("subject", "body", "from", "to", "cc"):
        for operator in (
            "contains",
            "does_not_contain",
            "is_equal_to",
            "starts_with",
            "ends_with",
            "is_any_of",
            "is_not_any_of",
            "is_empty",
            "is_not_empty",
        ):
            assert (field, operator) in covered


ANY_OF_YAML = """
mailboxes:
  - id: support
    organization: acme
    label: Acme Support
    email: support@acme.example
    imap: {host: h, username: u, password: p}
    smtp: {host: h}
    reply_policy: all_matching
    rules:
      - id: as-list
        name: As a list
        conditions:
          - {field: from, operator: OPERATOR, value: [ann@customer.example, " Bob@Partner.example "]}
        template: {subject: s, body: b}
      - id: as-text
        name: As text
        conditions: [{field: from, operator: OPERATOR, value: "ann@customer.example,  Bob@Partner.example ,"}]
        template: {subject: s, body: b}
"""


@pytest.mark.parametrize(
    ("operator", "sender", "expected"),
    [
        ("is_any_of", ANN, True),
        ("is_any_of", BOB, True),
        ("is_any_of", CARA, False),
        ("is_not_any_of", ANN, False),
        ("is_not_any_of", BOB, False),
        ("is_not_any_of", CARA, True),
    ],
)
def test_any_of_as_a_yaml_list_and_as_comma_separated_text_mean_the_same(
    operator: str, sender: Address, expected: bool
) -> None:
    box = parse_config(ANY_OF_YAML.replace("OPERATOR", operator)).mailboxes[0]

    outcomes, _ = compile_rules(box).evaluate(_letter(sender=sender))

    assert [(o.rule_id, o.matched) for o in outcomes] == [("as-list", expected), ("as-text", expected)]


def _evaluate(*rules: Any, policy: ReplyPolicy = ReplyPolicy.FIRST_MATCH, letter: LetterView = LETTER) -> Any:
    outcomes, chosen = compile_rules(mailbox(*rules, reply_policy=policy)).evaluate(letter)
    return [(o.rule_id, o.matched, o.failed_condition) for o in outcomes], [r.id for r in chosen]


MATCH = condition("subject", "contains", "urgent")
MISS = condition("subject", "contains", "invoice")


@pytest.mark.parametrize("letter", [LETTER, EMPTY], ids=["letter", "empty letter"])
def test_a_rule_without_conditions_matches_every_letter(letter: LetterView) -> None:
    assert _evaluate(rule("all"), letter=letter) == ([("all", True, None)], ["all"])


def test_conditions_are_and_combined_and_the_first_failure_is_named() -> None:
    assert _evaluate(rule("both", MATCH, MATCH)) == ([("both", True, None)], ["both"])
    assert _evaluate(rule("second", MATCH, MISS, MATCH)) == ([("second", False, 1)], [])
    assert _evaluate(rule("first", MISS, MATCH)) == ([("first", False, 0)], [])


def test_first_match_stops_at_the_first_matching_rule() -> None:
    rules = (rule("a", MISS), rule("b", MATCH), rule("c"))

    assert _evaluate(*rules) == ([("a", False, 0), ("b", True, None)], ["b"])


def test_all_matching_returns_every_matching_rule() -> None:
    rules = (rule("a", MISS), rule("b", MATCH), rule("c"))

    assert _evaluate(*rules, policy=ReplyPolicy.ALL_MATCHING) == (
        [("a", False, 0), ("b", True, None), ("c", True, None)],
        ["b", "c"],
    )


@pytest.mark.parametrize("policy", list(ReplyPolicy))
def test_inactive_rules_are_skipped(policy: ReplyPolicy) -> None:
    rules = (rule("off", active=False), rule("on", MATCH))

    assert _evaluate(*rules, policy=policy) == ([("on", True, None)], ["on"])


@pytest.mark.parametrize(
    ("policy", "chosen"),
    [(ReplyPolicy.FIRST_MATCH, ["first"]), (ReplyPolicy.ALL_MATCHING, ["first", "tie-1", "tie-2", "last"])],
)
def test_rules_run_in_position_order_then_as_written(policy: ReplyPolicy, chosen: list[str]) -> None:
    rules = (rule("last", position=9), rule("tie-1", position=5), rule("tie-2", position=5), rule("first"))

    assert _evaluate(*rules, policy=policy)[1] == chosen


def test_outcomes_carry_the_rule_name() -> None:
    outcomes, _ = compile_rules(mailbox(rule("ack"))).evaluate(LETTER)

    assert outcomes[0].rule_name == "rule ack"


def test_a_mailbox_without_rules_chooses_nothing() -> None:
    assert compile_rules(mailbox()).evaluate(LETTER) == ([], [])


# Property: each negative operator is exactly the negation of its positive twin, on every field.

_ALPHABET = "aAbsSßẞİi\u0131kK\u212a ,.@\n"
_TEXT = st.text(alphabet=_ALPHABET, max_size=6)
_ADDRESS = st.builds(Address, name=_TEXT, address=_TEXT)
_ADDRESSES = st.lists(_ADDRESS, max_size=3).map(tuple)
_MOMENTS = [RECEIVED - timedelta(days=1), RECEIVED, RECEIVED + timedelta(seconds=1)]
_LETTERS = st.builds(
    LetterView,
    received=st.sampled_from(_MOMENTS),
    subject=_TEXT,
    body=_TEXT,
    sender=st.none() | _ADDRESS,
    to=_ADDRESSES,
    cc=_ADDRESSES,
    bcc=_ADDRESSES,
    reply_to=_ADDRESSES,
    headers=st.dictionaries(
        st.sampled_from(["x-test", "x-other"]),
        st.lists(_TEXT | st.just("=?utf-8?q?=C3=9F_S?="), max_size=2).map(tuple),
    ),
    has_attachments=st.booleans(),
)
_NEEDLE = _TEXT.filter(lambda s: s != "")
_LIST = st.lists(_TEXT, min_size=1, max_size=3).filter(lambda vs: any(v.strip() for v in vs))
_COMMA_TEXT = _TEXT.filter(lambda s: any(part.strip() for part in s.split(",")))
_REGEX = _NEEDLE.map(re2.escape) | st.sampled_from(
    ["^a", "s$", "ß|ss", "[İi]", "(?s)a.b", "^$", "k+", r"\bs"]
)
_TEXT_FIELDS = st.sampled_from(["subject", "body", "from", "to", "cc", "bcc", "reply_to", "header:X-Test"])
_TWINS = st.one_of(
    st.tuples(_TEXT_FIELDS, st.just(("does_not_contain", "contains")), _NEEDLE),
    st.tuples(_TEXT_FIELDS, st.just(("is_not_any_of", "is_any_of")), _LIST | _COMMA_TEXT),
    st.tuples(_TEXT_FIELDS, st.just(("is_not_empty", "is_empty")), st.none()),
    st.tuples(_TEXT_FIELDS, st.just(("does_not_match_regex", "matches_regex")), _REGEX),
    st.tuples(st.just("has_attachments"), st.just(("is_false", "is_true")), st.none()),
    st.tuples(st.just("received"), st.just(("after", "before")), st.sampled_from(_MOMENTS).map(str)),
)


@settings(max_examples=500, deadline=None)
@given(letter=_LETTERS, twins=_TWINS, case_sensitive=st.booleans())
def test_negative_operators_are_the_negation_of_their_positive_twins(
    letter: LetterView, twins: tuple[str, tuple[str, str], Any], case_sensitive: bool
) -> None:
    field, (negative, positive), value = twins

    yes = holds(condition(field, positive, value, case_sensitive), letter)
    no = holds(condition(field, negative, value, case_sensitive), replace(letter))

    assert no is (not yes)


# A rule answers only letters received at or after its created_at.


def _created(
    rule_id: str, created_at: datetime | None, *conditions: Condition, position: int = 0
) -> AutoResponseRule:
    made = rule(rule_id, *conditions, position=position)
    return AutoResponseRule.model_validate({**made.model_dump(), "created_at": created_at})


@pytest.mark.parametrize(
    ("created_at", "matched"),
    [
        (None, True),
        (RECEIVED - timedelta(days=30), True),
        (RECEIVED, True),
        (RECEIVED + timedelta(microseconds=1), False),
        (RECEIVED + timedelta(days=1), False),
    ],
)
def test_a_rule_applies_only_to_letters_received_at_or_after_its_creation(
    created_at: datetime | None, matched: bool
) -> None:
    outcomes, chosen = compile_rules(mailbox(_created("new", created_at, MATCH))).evaluate(LETTER)

    assert [(o.matched, o.failed_condition) for o in outcomes] == [(matched, None)]
    assert [r.id for r in chosen] == (["new"] if matched else [])


def test_a_letter_older_than_the_rule_is_not_answered_and_the_outcome_says_why() -> None:
    made = mailbox(_created("new", RECEIVED + timedelta(hours=1), MISS))

    outcome = compile_rules(made).evaluate(LETTER)[0][0]

    assert outcome.matched is False
    assert outcome.failed_condition is None
    assert outcome.reason == "letter received before the rule was created (2024-05-06T08:08:09+00:00)"


def test_a_rule_created_later_is_skipped_and_the_next_one_answers_under_first_match() -> None:
    rules = (_created("new", RECEIVED + timedelta(days=1)), _created("old", None, position=1))

    assert _evaluate(*rules) == ([("new", False, None), ("old", True, None)], ["old"])


def test_created_at_and_received_without_an_offset_are_utc() -> None:
    naive = RECEIVED.replace(tzinfo=None)
    made = mailbox(_created("new", naive))

    outcomes, chosen = compile_rules(made).evaluate(_letter(received=naive))

    assert [o.matched for o in outcomes] == [True]
    assert [r.id for r in chosen] == ["new"]


def test_outcomes_of_failed_conditions_give_no_reason() -> None:
    outcomes, _ = compile_rules(mailbox(rule("r", MISS))).evaluate(LETTER)

    assert (outcomes[0].failed_condition, outcomes[0].reason) == (0, None)
