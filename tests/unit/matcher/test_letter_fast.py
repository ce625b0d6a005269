"""Whole-letter parsing: the direct reading of plain letters gives exactly what the email parser gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from matcher.letter import _parse_plain, parse_letter, parse_letter_reference
from tests.letters import letter
from tests.unit.ingest.test_parse_fast import letters
from tests.unit.matcher.test_letter import ATTACHMENT


def _outcome(raw: bytes, parse: Any) -> Any:
    try:
        return parse(raw)
    except Exception as exc:  # the reference fails on some letters: the fast path must fail alike
        return type(exc)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(letters())
def test_fast_letter_equals_the_reference(raw: bytes) -> None:
    assert _outcome(raw, parse_letter) == _outcome(raw, parse_letter_reference)


@pytest.mark.parametrize(
    "raw",
    [
        letter("Customer 1 <customer1@example.com>", "Acme Support <support@acme.example>")[0],
        letter("a@x.example", "b@x.example", body="Grüße", html="<p>Grüße</p>")[0],
        letter("a@x.example", "b@x.example", html="<p>only html</p>", html_only=True)[0],
        ATTACHMENT,
    ],
    ids=["plain", "alternative", "html only", "attachment"],
)
def test_ordinary_letters_take_the_fast_path(raw: bytes) -> None:
    assert _parse_plain(raw) is not None
    assert parse_letter(raw) == parse_letter_reference(raw)
