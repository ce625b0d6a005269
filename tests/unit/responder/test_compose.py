"""Composed replies: threading and loop-guard headers, html with a text part, no header injection."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from ingest.parse import letter_event
from matcher.decision import decide
from matcher.limits import ReplyHistory
from matcher.rules import compile_rules
from matcher.threads import ThreadIndex
from responder.compose import compose, message_for
from responder.errors import TemplateError
from responder.render import RenderedReply, render, template_variables
from schemas.config import CaseProcessing, ReplyTemplate
from schemas.events import Address, ReplyRequested
from schemas.ids import case_id, reply_id, reply_message_id
from tests.unit.builders import NOW, config, letter_bytes, mailbox, rule

SENDER = Address(name="Acme Support", address="support@acme.example")
ANN = Address(name="Ann Lee", address="ann@customer.example")
EXPECTED_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "X-Loop",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
]


def _compose(
    reply: RenderedReply | None = None,
    to: tuple[Address, ...] = (ANN,),
    references: tuple[str, ...] = ("root@customer.example", "m1@customer.example"),
    auto: bool = True,
) -> EmailMessage:
    message = compose(
        reply or RenderedReply(subject="Re: Printer", body="We are on it.\n", type="plain"),
        SENDER,
        to,
        "reply-1@acme.example",
        "m1@customer.example",
        references,
        NOW,
        auto=auto,
    )
    return _reparse(message)


def _reparse(message: EmailMessage) -> EmailMessage:
    """The message as a receiver sees it: its bytes parsed back."""
    parsed = BytesParser(policy=policy.default).parsebytes(message.as_bytes())
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_reply_has_threading_and_loop_guard_headers() -> None:
    sent = _compose()

    assert sorted(sent.keys()) == sorted(EXPECTED_HEADERS)
    assert sent["From"] == "Acme Support <support@acme.example>"
    assert sent["To"] == "Ann Lee <ann@customer.example>"
    assert sent["Subject"] == "Re: Printer"
    assert sent["Message-ID"] == "<reply-1@acme.example>"
    assert sent["In-Reply-To"] == "<m1@customer.example>"
    assert sent["References"] == "<root@customer.example> <m1@customer.example>"
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent["X-Auto-Response-Suppress"] == "All"
    assert sent["X-Loop"] == "support@acme.example"
    assert sent["Date"].datetime == NOW
    assert sent.get_content_type() == "text/plain"
    assert sent.get_content() == "We are on it.\n"


def test_a_reply_sent_by_hand_has_no_auto_headers_but_keeps_the_loop_marker() -> None:
    sent = _compose(auto=False)

    assert "Auto-Submitted" not in sent
    assert "X-Auto-Response-Suppress" not in sent
    assert sent["X-Loop"] == "support@acme.example"


@pytest.mark.parametrize(
    ("references", "header"),
    [
        ((), None),
        (("a@c",), "<a@c>"),
        (("a@c", "b@c", "a@c"), "<a@c> <b@c>"),
        (tuple(f"id-{i}@customer.example" for i in range(40)), None),
    ],
    ids=["none", "one", "repeated", "long"],
)
def test_references(references: tuple[str, ...], header: str | None) -> None:
    sent = _compose(references=references)

    if not references:
        assert "References" not in sent
    elif header is not None:
        assert sent["References"] == header
    else:
        assert sent["References"].split() == [f"<{r}>" for r in references]


def test_several_recipients() -> None:
    sent = _compose(
        to=(ANN, Address(address="b@customer.example"), Address(name="Lee, Ann", address="c@x.example"))
    )

    assert [a.addr_spec for a in sent["To"].addresses] == [
        "ann@customer.example",
        "b@customer.example",
        "c@x.example",
    ]
    assert sent["To"].addresses[2].display_name == "Lee, Ann"


def test_an_html_reply_is_multipart_alternative_with_a_text_part_first() -> None:
    html = "<p>Dear Ann,</p><p>we are <b>on it</b> &amp; will call.</p>"

    sent = _compose(RenderedReply(subject="Re: Printer", body=html, type="html"))

    assert sent.get_content_type() == "multipart/alternative"
    parts = list(sent.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert parts[0].get_content().strip() == "Dear Ann,\n\nwe are on it & will call."
    assert parts[1].get_content().strip() == html
    assert sent["Auto-Submitted"] == "auto-replied"


def test_non_ascii_subject_and_names_survive_the_round_trip() -> None:
    reply = RenderedReply(subject="Re: Grüße aus Köln \u2013 İstanbul", body="Grüße\n", type="plain")

    sent = _compose(reply, to=(Address(name="Jürgen Müller", address="j@kunde.example"),))

    assert sent["Subject"] == "Re: Grüße aus Köln \u2013 İstanbul"
    assert sent["To"].addresses[0].display_name == "Jürgen Müller"
    assert sent.get_content() == "Grüße\n"
    header_block = sent.as_bytes().partition(b"\n\n")[0]
    assert header_block.isascii()  # header fields are RFC 2047 encoded, not raw 8-bit


def test_a_line_break_in_the_incoming_subject_adds_no_header() -> None:
    variables = template_variables(
        {"subject": "Hi\r\nBcc: victim@evil.example\r\nX-Evil: 1", "from_name": "Ann"},
        "Acme Support",
        "support@acme.example",
        "Ack",
        NOW,
    )
    rendered = render(ReplyTemplate(subject="Re: {{ letter.subject }}", body="Hello"), variables)

    sent = _compose(rendered)

    assert sorted(sent.keys()) == sorted(EXPECTED_HEADERS)
    assert "Bcc" not in sent and "X-Evil" not in sent
    assert sent["Subject"] == "Re: Hi Bcc: victim@evil.example X-Evil: 1"


def test_a_line_break_in_a_recipients_name_adds_no_header() -> None:
    sent = _compose(to=(Address(name="Ann\r\nBcc: victim@evil.example", address="ann@customer.example"),))

    assert sorted(sent.keys()) == sorted(EXPECTED_HEADERS)
    assert [a.addr_spec for a in sent["To"].addresses] == ["ann@customer.example"]


@pytest.mark.parametrize(
    "subject",
    ["a\r\nBcc: victim@evil.example", "a\nBcc: victim@evil.example", "a\rBcc: victim@evil.example"],
)
def test_a_raw_line_break_reaching_compose_is_refused(subject: str) -> None:
    with pytest.raises(ValueError):
        compose(RenderedReply(subject=subject, body="b", type="plain"), SENDER, (ANN,), "r@a", "m@c", (), NOW)


def test_a_line_break_in_a_recipient_address_is_refused() -> None:
    bad = Address(address="ann@customer.example\r\nBcc: victim@evil.example")

    with pytest.raises(ValueError):
        compose(RenderedReply(subject="s", body="b", type="plain"), SENDER, (bad,), "r@a", "m@c", (), NOW)


def _request(template: ReplyTemplate) -> ReplyRequested:
    """The request the matcher makes for letter m1 in a mailbox that makes cases."""
    box = mailbox(rule("ack", template=template), processing=CaseProcessing(type="case"))
    received = letter_event("support", "acme", "INBOX", 7, 1, NOW, letter_bytes(subject="Printer broken"))
    (request,) = decide(
        received, box, config(box), compile_rules(box), ThreadIndex(), ReplyHistory(), NOW
    ).replies
    return request


def test_message_for_renders_and_composes_the_requested_reply() -> None:
    template = ReplyTemplate(
        subject="{{ letter.reply_subject }} [{{ record.type }} {{ record.id }}]",
        body="Dear {{ letter.from_name }}, your case is {{ record.id }}.\n",
    )
    box = mailbox(processing=CaseProcessing(type="case"))

    sent = _reparse(message_for(_request(template), box, NOW))

    case = case_id("support", "m1@customer.example")
    assert sent["Subject"] == f"Re: Printer broken [case {case}]"
    assert sent["From"] == "Acme Support <support@acme.example>"
    assert sent["To"] == "Ann Lee <ann@customer.example>"
    reply = reply_id("support", "m1@customer.example", "ack")
    assert sent["Message-ID"] == f"<{reply_message_id(reply, 'support@acme.example')}>"
    assert sent["In-Reply-To"] == "<m1@customer.example>"
    assert sent["References"] == "<m1@customer.example>"
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent["X-Loop"] == "support@acme.example"
    assert sent.get_content() == f"Dear Ann Lee, your case is {case}.\n"


def test_message_for_raises_the_template_error_the_responder_records() -> None:
    request = _request(ReplyTemplate(subject="s", body="{{ 1 / 0 }}"))

    with pytest.raises(TemplateError, match="rendering failed"):
        message_for(request, mailbox(), NOW)
