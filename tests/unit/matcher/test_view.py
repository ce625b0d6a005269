"""What conditions see of a received letter: bcc and headers from the raw letter, RFC 2047 decoded; each
field's texts made once per letter."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ingest.parse import letter_event
from matcher.letter import parse_letter
from matcher.rules import LetterView, compile_rules, view_of
from schemas.config import ConditionField, HeaderField
from schemas.events import Address
from tests.unit.builders import NOW, condition, letter_bytes, mailbox, rule

ATTACHED = (
    b"From: Ann Lee <ann@customer.example>\r\nTo: support@acme.example\r\n"
    b"Bcc: =?utf-8?q?J=C3=BCrgen_Stra=C3=9Fe?= <jurgen@acme.example>, audit@acme.example\r\n"
    b"Subject: invoice\r\nMessage-ID: <m2@customer.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the invoice.\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
)


def _view(raw: bytes) -> LetterView:
    received = letter_event("support", "acme", "INBOX", 7, 42, NOW - timedelta(minutes=5), raw)
    sender = received.headers.from_
    assert sender is not None
    return view_of(received, parse_letter(raw), sender)


def test_a_plain_letter() -> None:
    view = _view(
        letter_bytes(
            subject="Printer",
            body="It is broken",
            headers={"Reply-To": "Ann <ann@home.example>", "Cc": "bob@partner.example"},
        )
    )

    assert view.received == NOW - timedelta(minutes=5)
    assert (view.subject, view.body) == ("Printer", "It is broken")
    assert view.sender == Address(name="Ann Lee", address="ann@customer.example")
    assert view.to == (Address(address="support@acme.example"),)
    assert view.cc == (Address(address="bob@partner.example"),)
    assert view.reply_to == (Address(name="Ann", address="ann@home.example"),)
    assert view.bcc == ()
    assert view.has_attachments is False


def test_bcc_is_read_from_the_raw_letter_with_names_decoded() -> None:
    view = _view(ATTACHED)

    assert view.bcc == (
        Address(name="Jürgen Straße", address="jurgen@acme.example"),
        Address(address="audit@acme.example"),
    )
    assert view.texts(ConditionField.BCC) == ("Jürgen Straße", "jurgen@acme.example", "audit@acme.example")
    assert view.has_attachments is True


@pytest.mark.parametrize(
    ("headers", "name", "texts"),
    [
        ({"X-Priority": "1 (Highest)"}, "x-priority", ("1 (Highest)",)),
        (
            {"X-Note": "=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-9?b?3XN0YW5idWw=?="},
            "x-note",
            ("Grüße aus İstanbul",),
        ),
        ({"X-Note": "=?utf-8?q?a?= =?utf-8?q?b?="}, "x-note", ("ab",)),
        ({"X-Note": "=?x-unknown?q?abc?="}, "x-note", ("abc",)),
        ({"X-Note": "   "}, "x-note", ()),
        ({}, "x-note", ()),
        ({"Subject": "=?utf-8?q?Caf=C3=A9?="}, "subject", ("Café",)),
    ],
)
def test_header_values_are_decoded_and_blank_ones_dropped(
    headers: dict[str, str], name: str, texts: tuple[str, ...]
) -> None:
    lines = {"From": "ann@customer.example", "To": "support@acme.example", "Subject": "s", **headers}
    view = _view("".join(f"{k}: {v}\r\n" for k, v in lines.items()).encode() + b"\r\nHi\r\n")

    assert view.texts(HeaderField(name)) == texts


def test_rules_see_a_received_letter() -> None:
    box = mailbox(
        rule("bcc", condition("bcc", "contains", "STRASSE")),
        rule("attached", condition("has_attachments", "is_true")),
        rule("header", condition("header:Content-Type", "starts_with", "multipart/")),
        rule("old", condition("received", "before", "2000-01-01")),
        reply_policy="all_matching",
    )

    outcomes, chosen = compile_rules(box).evaluate(_view(ATTACHED))

    assert [r.id for r in chosen] == ["bcc", "attached", "header"]
    assert [o.matched for o in outcomes] == [True, True, True, False]


class _CountingText(str):
    """A text that counts how often it is case-folded."""

    folds = 0

    def casefold(self) -> str:
        type(self).folds += 1
        return super().casefold()


def test_each_field_is_folded_once_per_letter_however_many_conditions_test_it() -> None:
    _CountingText.folds = 0
    body = _CountingText("Hello, the printer is broken")
    box = mailbox(
        *(rule(f"r{i}", condition("body", "contains", word)) for i, word in enumerate(["x", "y", "z"])),
        rule(
            "both", condition("body", "starts_with", "hello"), condition("body", "matches_regex", "broken$")
        ),
        reply_policy="all_matching",
    )
    view = LetterView(received=NOW, body=body)

    outcomes, _ = compile_rules(box).evaluate(view)

    assert [o.matched for o in outcomes] == [False, False, False, True]
    assert _CountingText.folds == 1
    assert view.folded(ConditionField.BODY) is view.folded(ConditionField.BODY)
    assert view.encoded(ConditionField.BODY) == (b"Hello, the printer is broken",)
