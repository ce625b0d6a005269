"""Conditions on bcc, reply_to, headers, attachments and reception time, and regexes on every text field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from matcher.rules import LetterView
from schemas.config import ConditionField, ConditionOperator
from tests.unit.builders import condition
from tests.unit.matcher.test_rules import ANN, BOB, CASES, DAN, EMPTY, LETTER, _letter, holds

CS = {"case_sensitive": True}

# (field, operator, value, extra condition settings, letter, expected)
NEW_CASES: list[tuple[str, str, Any, dict[str, Any], LetterView, bool]] = [
    # bcc: any one recipient, by name or address (Dan İnce <dan@acme.example>)
    ("bcc", "contains", "dan", {}, LETTER, True),
    ("bcc", "contains", "partner", {}, LETTER, False),
    ("bcc", "contains", "DAN", CS, LETTER, False),
    ("bcc", "contains", "İNCE", {}, LETTER, True),
    # Turkish dotted İ folds to a plain i, so "ince" is in "İnce"
    ("bcc", "contains", "ince", {}, LETTER, True),
    ("bcc", "does_not_contain", "dan", {}, LETTER, False),
    ("bcc", "does_not_contain", "zed", {}, LETTER, True),
    ("bcc", "is_equal_to", "DAN@ACME.example", {}, LETTER, True),
    ("bcc", "is_equal_to", "DAN@ACME.example", CS, LETTER, False),
    ("bcc", "is_equal_to", "dan", {}, LETTER, False),
    ("bcc", "starts_with", "dan@", {}, LETTER, True),
    ("bcc", "starts_with", "acme", {}, LETTER, False),
    ("bcc", "ends_with", "@acme.example", {}, LETTER, True),
    ("bcc", "ends_with", "@partner.example", {}, LETTER, False),
    ("bcc", "is_any_of", ["x@y.example", "dan@acme.example"], {}, LETTER, True),
    ("bcc", "is_any_of", "x@y.example, z@y.example", {}, LETTER, False),
    ("bcc", "is_not_any_of", ["dan@acme.example"], {}, LETTER, False),
    ("bcc", "is_not_any_of", "x@y.example", {}, LETTER, True),
    ("bcc", "is_empty", None, {}, LETTER, False),
    ("bcc", "is_not_empty", None, {}, LETTER, True),
    ("bcc", "is_empty", None, {}, EMPTY, True),
    ("bcc", "is_not_empty", None, {}, EMPTY, False),
    ("bcc", "contains", "x", {}, EMPTY, False),
    ("bcc", "does_not_contain", "x", {}, EMPTY, True),
    ("bcc", "is_equal_to", "bob@partner.example", {}, _letter(bcc=(ANN, BOB, DAN)), True),
    ("bcc", "matches_regex", r"^dan@acme\.", {}, LETTER, True),
    ("bcc", "matches_regex", r"^bob@", {}, LETTER, False),
    ("bcc", "does_not_match_regex", r"^dan@", {}, LETTER, False),
    ("bcc", "does_not_match_regex", "x", {}, EMPTY, True),
    # reply_to: a list like to (Ann <ann@home.example>)
    ("reply_to", "contains", "home", {}, LETTER, True),
    ("reply_to", "contains", "customer", {}, LETTER, False),
    ("reply_to", "does_not_contain", "home", {}, LETTER, False),
    ("reply_to", "does_not_contain", "customer", {}, LETTER, True),
    ("reply_to", "is_equal_to", "ANN", {}, LETTER, True),
    ("reply_to", "is_equal_to", "ANN", CS, LETTER, False),
    ("reply_to", "starts_with", "ann@", {}, LETTER, True),
    ("reply_to", "ends_with", ".example", {}, LETTER, True),
    ("reply_to", "ends_with", ".com", {}, LETTER, False),
    ("reply_to", "is_any_of", ["ann@home.example"], {}, LETTER, True),
    ("reply_to", "is_not_any_of", ["ann@customer.example"], {}, LETTER, True),
    ("reply_to", "is_empty", None, {}, LETTER, False),
    ("reply_to", "is_not_empty", None, {}, LETTER, True),
    ("reply_to", "is_empty", None, {}, EMPTY, True),
    ("reply_to", "is_not_empty", None, {}, EMPTY, False),
    ("reply_to", "matches_regex", r"@home\.", {}, LETTER, True),
    ("reply_to", "does_not_match_regex", r"@work\.", {}, LETTER, True),
    # a header by name, any case: X-Priority: 1 (Highest)
    ("header:X-Priority", "contains", "highest", {}, LETTER, True),
    ("header:X-Priority", "contains", "highest", CS, LETTER, False),
    ("header:x-PRIORITY", "is_equal_to", "1 (highest)", {}, LETTER, True),
    ("header:X-Priority", "is_equal_to", "1", {}, LETTER, False),
    ("header:X-Priority", "starts_with", "1 (", {}, LETTER, True),
    ("header:X-Priority", "ends_with", "(HIGHEST)", {}, LETTER, True),
    ("header:X-Priority", "does_not_contain", "low", {}, LETTER, True),
    ("header:X-Priority", "does_not_contain", "HIGH", {}, LETTER, False),
    ("header:X-Priority", "is_any_of", "1 (Highest), 2", {}, LETTER, True),
    ("header:X-Priority", "is_any_of", ["1", "2"], {}, LETTER, False),
    ("header:X-Priority", "is_not_any_of", ["5 (lowest)"], {}, LETTER, True),
    ("header:X-Priority", "is_not_any_of", ["1 (HIGHEST)"], {}, LETTER, False),
    ("header:X-Priority", "is_empty", None, {}, LETTER, False),
    ("header:X-Priority", "is_not_empty", None, {}, LETTER, True),
    ("header:X-Priority", "matches_regex", r"^[12]\b", {}, LETTER, True),
    ("header:X-Priority", "does_not_match_regex", r"^[12]\b", {}, LETTER, False),
    # a missing or blank header is empty
    ("header:X-Priority", "is_empty", None, {}, EMPTY, True),
    ("header:X-Missing", "is_empty", None, {}, LETTER, True),
    ("header:X-Missing", "is_not_empty", None, {}, LETTER, False),
    ("header:X-Missing", "contains", "x", {}, LETTER, False),
    ("header:X-Missing", "does_not_contain", "x", {}, LETTER, True),
    ("header:X-Missing", "is_not_any_of", ["x"], {}, LETTER, True),
    ("header:X-Missing", "matches_regex", "^$", {}, LETTER, False),
    ("header:X-Missing", "does_not_match_regex", "^$", {}, LETTER, True),
    ("header:X-Blank", "is_empty", None, {}, LETTER, True),
    # several headers of one name: any one value
    ("header:X-Tag", "is_equal_to", "beta", {}, LETTER, True),
    ("header:X-Tag", "starts_with", "alpha", {}, LETTER, True),
    ("header:X-Tag", "matches_regex", "^beta$", {}, LETTER, True),
    ("header:X-Tag", "is_equal_to", "alpha beta", {}, LETTER, False),
    ("header:X-Tag", "does_not_contain", "beta", {}, LETTER, False),
    # RFC 2047: X-Mailer: =?utf-8?q?Gr=C3=BC=C3=9Fe_Mail_=C4=B0stanbul?= reads "Grüße Mail İstanbul"
    ("header:X-Mailer", "contains", "GRÜSSE", {}, LETTER, True),
    ("header:X-Mailer", "starts_with", "grüße mail", {}, LETTER, True),
    ("header:X-Mailer", "is_equal_to", "Grüße Mail İstanbul", CS, LETTER, True),
    ("header:X-Mailer", "contains", "=?utf-8?", {}, LETTER, False),
    ("header:X-Mailer", "ends_with", "İSTANBUL", {}, LETTER, True),
    ("header:X-Mailer", "ends_with", "istanbul", {}, LETTER, True),
    ("header:X-Mailer", "matches_regex", "Grüße", CS, LETTER, True),
    # has_attachments
    ("has_attachments", "is_true", None, {}, LETTER, True),
    ("has_attachments", "is_false", None, {}, LETTER, False),
    ("has_attachments", "is_true", None, {}, EMPTY, False),
    ("has_attachments", "is_false", None, {}, EMPTY, True),
    # received: the letter came at 2024-05-06T07:08:09Z; a date is midnight UTC; after is "at or after"
    ("received", "before", "2024-05-07", {}, LETTER, True),
    ("received", "before", "2024-05-06", {}, LETTER, False),
    ("received", "after", "2024-05-06", {}, LETTER, True),
    ("received", "after", "2024-05-07", {}, LETTER, False),
    ("received", "before", "2024-05-06T07:08:09Z", {}, LETTER, False),
    ("received", "after", "2024-05-06T07:08:09Z", {}, LETTER, True),
    ("received", "before", "2024-05-06T07:08:10", {}, LETTER, True),
    ("received", "before", "2024-05-06T09:08:09+02:00", {}, LETTER, False),
    ("received", "after", "2024-05-06T09:08:09+02:00", {}, LETTER, True),
    ("received", "after", "2024-05-06T09:08:10+02:00", {}, LETTER, False),
    ("received", "before", "2024-05-07", {}, _letter(received=datetime(2024, 5, 6, 23, 59)), True),
    # regexes on the other fields: a search anywhere; ^ and $ are the ends of the text
    ("subject", "matches_regex", "^urgent:", {}, LETTER, True),
    ("subject", "matches_regex", "^urgent:", CS, LETTER, False),
    ("subject", "matches_regex", "^URGENT:", CS, LETTER, True),
    ("subject", "matches_regex", r"printer\s+broken$", {}, LETTER, True),
    ("subject", "matches_regex", "^printer", {}, LETTER, False),
    ("subject", "does_not_match_regex", "^urgent:", {}, LETTER, False),
    ("subject", "does_not_match_regex", "^urgent:", CS, LETTER, True),
    ("subject", "matches_regex", "^$", {}, EMPTY, False),
    ("subject", "matches_regex", ".*", {}, EMPTY, False),
    ("subject", "does_not_match_regex", ".*", {}, EMPTY, True),
    # case-insensitive regexes fold one character to one: ẞ is ß, but ß is never ss, nor İ i
    ("subject", "matches_regex", "straße", {}, _letter(subject="HAUPTSTRAẞE"), True),
    ("subject", "matches_regex", "STRASSE", {}, _letter(subject="Hauptstraße"), False),
    ("subject", "matches_regex", "stra(ß|ss)e", {}, _letter(subject="STRASSE"), True),
    ("subject", "matches_regex", "İstanbul", {}, _letter(subject="İSTANBUL"), True),
    ("subject", "matches_regex", "İstanbul", {}, _letter(subject="istanbul"), False),
    ("subject", "matches_regex", "kelvin", {}, _letter(subject="\u212aELVIN"), True),
    ("body", "matches_regex", r"floor \d", {}, LETTER, True),
    ("body", "matches_regex", "^the printer", {}, LETTER, False),
    ("body", "matches_regex", "(?m)^the printer", {}, LETTER, True),
    ("body", "matches_regex", "floor.*thanks", {}, LETTER, False),
    ("body", "matches_regex", "(?s)floor.*thanks", {}, LETTER, True),
    ("body", "matches_regex", "thanks$", {}, LETTER, True),
    ("body", "does_not_match_regex", "unsubscribe", {}, LETTER, True),
    ("body", "does_not_match_regex", "FLOOR", {}, LETTER, False),
    ("body", "matches_regex", "GRÜßE", {}, _letter(body="viele grüße"), True),
    ("from", "matches_regex", r"^ann@customer\.", {}, LETTER, True),
    ("from", "matches_regex", "lee$", {}, LETTER, True),
    ("from", "matches_regex", "^lee", {}, LETTER, False),
    ("from", "does_not_match_regex", r"@customer\.example$", {}, LETTER, False),
    ("from", "matches_regex", "a", {}, EMPTY, False),
    ("from", "does_not_match_regex", "a", {}, EMPTY, True),
    ("to", "matches_regex", "^cara@", {}, LETTER, True),
    ("to", "matches_regex", "^bob@", {}, LETTER, False),
    ("to", "does_not_match_regex", "straße", {}, LETTER, False),
    ("cc", "matches_regex", r"@partner\.example$", {}, LETTER, True),
    ("cc", "does_not_match_regex", "@partner", {}, LETTER, False),
    ("cc", "matches_regex", "x", {}, EMPTY, False),
]


@pytest.mark.parametrize(
    ("field", "operator", "value", "extra", "letter", "expected"),
    NEW_CASES,
    ids=[f"{c[0]} {c[1]} {c[2]!r}{' cs' if c[3] else ''} #{i}" for i, c in enumerate(NEW_CASES)],
)
def test_condition(
    field: str, operator: str, value: Any, extra: dict[str, Any], letter: LetterView, expected: bool
) -> None:
    assert holds(condition(field, operator, value, **extra), letter) is expected


_OWN = {
    "has_attachments": {"is_true", "is_false"},
    "received": {"before", "after"},
}
_TEXT_OPERATORS = {op.value for op in ConditionOperator} - {"is_true", "is_false", "before", "after"}


def test_every_operator_is_covered_on_every_field() -> None:
    covered = {("header" if c[0].startswith("header:") else c[0], c[1]) for c in (*CASES, *NEW_CASES)}

    for field in [*(f.value for f in ConditionField), "header"]:
        for operator in _OWN.get(field, _TEXT_OPERATORS):
            assert (field, operator) in covered, (field, operator)


@pytest.mark.parametrize(
    ("subject", "operator", "value", "case_sensitive"),
    [
        ("Cafe\u0301 am Markt", "contains", "café", False),  # e + combining acute is é
        ("Café am Markt", "contains", "cafe\u0301", False),
        ("Cafe\u0301 am Markt", "contains", "Café", True),
        ("Cafe\u0301", "is_equal_to", "café", False),
        ("Cafe\u0301", "is_any_of", ["café", "tea"], False),
        ("Flug nach İSTANBUL", "contains", "istanbul", False),  # Turkish dotted capital I
        ("Flug nach istanbul", "contains", "İstanbul", False),
    ],
)
def test_text_is_compared_as_a_reader_sees_it_whatever_its_unicode_form(
    subject: str, operator: str, value: Any, case_sensitive: bool
) -> None:
    made = condition("subject", operator, value, case_sensitive=case_sensitive)

    assert holds(made, _letter(subject=subject))
