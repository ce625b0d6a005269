"""The message as it goes out: employees' replies as written and without auto headers, the envelope
sender, the exact bytes (CRLF), SMTPUTF8 when an address needs it, and the size limit."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest

from responder.compose import envelope_sender, message_for, outgoing
from schemas.config import Mailbox, ReplyTemplate, SmtpSettings
from schemas.events import Address, ReplyContent, ReplyRequested
from tests.unit.builders import NOW, mailbox

ANN = Address(name="Ann Lee", address="ann@customer.example")


def _request(kind: str = "employee", **changes: Any) -> ReplyRequested:
    values: dict[str, Any] = {
        "event_id": "crm-7",
        "occurred_at": NOW,
        "reply_id": "crm-7",
        "mailbox_id": "support",
        "kind": kind,
        "to": (ANN,),
        "in_reply_to": "m2@customer.example",
        "references": ("m1@customer.example", "m2@customer.example"),
        "thread_id": "m1@customer.example",
        "mailbox_email": "support@acme.example",
    }
    if kind == "employee":
        values.update(
            author="olga",
            content=ReplyContent(subject="Re: Printer", body="Dear {{ letter.from_name }},\n\nfixed.\n"),
        )
    else:
        values.update(
            rule_id="ack",
            rule_name="Ack",
            template=ReplyTemplate(subject="Re: {{ letter.subject }}", body="Hi {{ letter.from_name }}"),
            letter={"subject": "Printer", "from_name": "Ann"},
        )
    values.update(changes)
    return ReplyRequested(**values)


def _box(envelope_from: str = "mailbox") -> Mailbox:
    return mailbox(smtp=SmtpSettings(host="smtp.acme.example", envelope_from=envelope_from))


def _parse(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_an_employee_reply_is_sent_as_written_as_the_mailbox_without_auto_headers() -> None:
    sent = _parse(outgoing(_request(), _box(), NOW).data)

    assert sent["From"] == "Acme Support <support@acme.example>"
    assert sent["To"] == "Ann Lee <ann@customer.example>"
    assert sent["Subject"] == "Re: Printer"
    assert sent["Message-ID"] == "<reply-crm-7@acme.example>"
    assert sent["In-Reply-To"] == "<m2@customer.example>"
    assert sent["References"] == "<m1@customer.example> <m2@customer.example>"
    assert sent["X-Loop"] == "support@acme.example"  # mailroom knows its own mail when it comes back
    assert "Auto-Submitted" not in sent
    assert "X-Auto-Response-Suppress" not in sent
    assert sent.get_content().replace("\r\n", "\n") == "Dear {{ letter.from_name }},\n\nfixed.\n"


def test_an_auto_reply_is_rendered_and_says_it_is_automatic() -> None:
    sent = _parse(outgoing(_request("auto"), _box(), NOW).data)

    assert sent["Subject"] == "Re: Printer"
    assert sent.get_content().strip() == "Hi Ann"
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent["X-Auto-Response-Suppress"] == "All"
    assert sent["X-Loop"] == "support@acme.example"


def test_an_employee_html_reply_keeps_its_markup_and_gets_a_text_part() -> None:
    html = "<p>Dear Ann,</p><p>{{ not a variable }} &amp; <b>fixed</b>.</p>"
    request = _request(content=ReplyContent(subject="Re: Printer", body=html, type="html"))

    sent = _parse(outgoing(request, _box(), NOW).data)

    text, markup = sent.iter_parts()
    assert markup.get_content().strip() == html
    assert "{{ not a variable }} & fixed." in text.get_content()


def test_a_line_break_in_an_employee_subject_is_folded_and_adds_no_header() -> None:
    request = _request(content=ReplyContent(subject="Re: Printer\r\nBcc: victim@evil.example", body="b"))

    sent = _parse(outgoing(request, _box(), NOW).data)

    assert sent["Subject"] == "Re: Printer Bcc: victim@evil.example"
    assert "Bcc" not in sent


@pytest.mark.parametrize(
    ("kind", "setting", "expected"),
    [
        ("auto", "mailbox", "support@acme.example"),
        ("auto", "null", ""),
        ("employee", "mailbox", "support@acme.example"),
        ("employee", "null", "support@acme.example"),  # a bounce of an employee's reply reaches the mailbox
    ],
)
def test_envelope_sender(kind: str, setting: str, expected: str) -> None:
    request = _request(kind)

    assert envelope_sender(request, _box(setting)) == expected
    assert outgoing(request, _box(setting), NOW).envelope_from == expected


def test_the_bytes_are_the_composed_message_with_crlf_line_ends() -> None:
    out = outgoing(_request(), _box(), NOW)

    assert out.data == message_for(_request(), _box(), NOW).as_bytes(policy=policy.SMTP)
    assert b"\n" not in out.data.replace(b"\r\n", b"")
    assert (out.message_id, out.recipients, out.smtputf8, out.date) == (
        "reply-crm-7@acme.example",
        ("ann@customer.example",),
        False,
        NOW,
    )


def test_the_same_recipient_twice_is_sent_to_once() -> None:
    out = outgoing(_request(to=(ANN, Address(name="Ann", address="ann@customer.example"))), _box(), NOW)

    assert out.recipients == ("ann@customer.example",)


def test_a_non_ascii_address_needs_smtputf8() -> None:
    out = outgoing(_request(to=(Address(name="Jürgen", address="jürgen@kunde.example"),)), _box(), NOW)

    assert out.smtputf8
    assert "jürgen@kunde.example".encode() in out.data


def test_a_reply_over_the_size_limit_is_refused_before_it_is_sent() -> None:
    # Within the model's character limit, but html with its text part, in UTF-8, is over the byte limit.
    big = ReplyContent(subject="s", body=("Grüße " * 19 + "\n") * 1_700, type="html")

    with pytest.raises(ValueError, match="over the limit"):
        outgoing(_request(content=big), _box(), NOW)


def test_a_reply_without_recipients_is_refused_before_it_is_sent() -> None:
    with pytest.raises(ValueError, match="no recipient"):
        outgoing(_request("auto", to=()), _box(), NOW)
