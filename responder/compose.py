"""Pure: builds a reply: threading headers, loop guards, deterministic Message-ID, text alternative.

`message_for` is the one way from a reply request to the message sent: the responder sends it (as the
bytes `outgoing` makes), and `mailroom rules test` shows it. `outgoing` writes the common reply's bytes
directly (`responder.wire`, the same message at a fraction of the cost) and has the email package
compose every other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime

from responder.render import RenderedReply, one_line, render, template_variables
from responder.wire import reply_bytes
from runtime.mail import POLICY, SMTP_POLICY, SMTPUTF8_POLICY
from runtime.text import html_to_text
from schemas.config import Mailbox
from schemas.events import Address, ReplyRequested
from schemas.ids import LOOP_MARKER_HEADER, reply_message_id

__all__ = [
    "MAX_MESSAGE_BYTES",
    "Outgoing",
    "compose",
    "envelope_sender",
    "message_for",
    "outgoing",
    "reply_text",
]

MAX_MESSAGE_BYTES = 512 * 1024
"""The largest reply sent: ReplySent carries the bytes (base64) and must stay under Kafka's 1 MB."""


def _header_address(address: Address) -> HeaderAddress:
    local, _, domain = address.address.rpartition("@")
    return HeaderAddress(display_name=" ".join(address.name.split()), username=local, domain=domain)


def _ids(values: tuple[str, ...]) -> str:
    return " ".join(f"<{v}>" for v in dict.fromkeys(values))


def compose(
    reply: RenderedReply,
    sender: Address,
    to: tuple[Address, ...],
    message_id: str,
    in_reply_to: str,
    references: tuple[str, ...],
    now: datetime,
    auto: bool = True,
) -> EmailMessage:
    """The reply as a message. Header values are built by the email package, which refuses CR/LF in them."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = _header_address(sender)
    msg["To"] = [_header_address(a) for a in to]
    msg["Subject"] = reply.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{message_id}>"
    msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = _ids(references)
    if auto:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    msg[LOOP_MARKER_HEADER] = sender.address
    if reply.type == "html":
        msg.set_content(html_to_text(reply.body))
        msg.add_alternative(reply.body, subtype="html")
    else:
        msg.set_content(reply.body)
    return msg


def reply_text(request: ReplyRequested, mailbox: Mailbox, now: datetime) -> RenderedReply:
    """An auto-reply's rendered template, or an employee's text as written (never rendered: a `{{` in it
    is sent as it is). TemplateError when an auto-reply's template fails on this letter."""
    if request.kind == "employee":
        if request.content is None:  # the event's validation already refuses this
            raise ValueError("an employee reply without content")
        content = request.content
        return RenderedReply(subject=one_line(content.subject), body=content.body, type=content.type)
    if request.template is None:
        raise ValueError("an auto reply without a template")
    variables = template_variables(request.letter, mailbox.label, mailbox.email, request.rule_name, now)
    return render(request.template, variables)


_Arguments = tuple[RenderedReply, Address, tuple[Address, ...], str, str, tuple[str, ...], datetime, bool]
"""What `compose` and `responder.wire.reply_bytes` take."""


def message_for(request: ReplyRequested, mailbox: Mailbox, now: datetime) -> EmailMessage:
    """The reply `request` asks for, rendered (auto) or taken as written (employee) and composed as the
    mailbox sends it. Only auto-replies say they are automatic (Auto-Submitted, X-Auto-Response-Suppress);
    every reply carries X-Loop, so mailroom knows its own mail when it comes back.

    TemplateError when the template fails on this letter; ValueError when the email package refuses a
    header value. Both are the reply's own failure (the responder records ReplyFailed)."""
    return compose(*_compose_arguments(request, mailbox, now))


def _compose_arguments(request: ReplyRequested, mailbox: Mailbox, now: datetime) -> _Arguments:
    """What `compose` takes for `request`: its text rendered (or taken as written), its headers' values."""
    return (
        reply_text(request, mailbox, now),
        Address(name=mailbox.label, address=mailbox.email),
        request.to,
        reply_message_id(request.reply_id, mailbox.email),
        request.in_reply_to,
        request.references,
        now,
        request.kind == "auto",
    )


def envelope_sender(request: ReplyRequested, mailbox: Mailbox) -> str:
    """The SMTP envelope sender: the mailbox's address, or the null sender ("", sent as `<>`) for
    auto-replies of a mailbox set to `envelope_from: null` (RFC 3834: bounces of an auto-reply go nowhere).
    An employee's reply always gives the mailbox's address, so a bounce reaches the mailbox."""
    if request.kind == "auto" and mailbox.smtp.envelope_from == "null":
        return ""
    return mailbox.email


@dataclass(frozen=True)
class Outgoing:
    """A reply ready for SMTP: the exact bytes sent (and filed), the envelope and the Message-ID."""

    data: bytes
    envelope_from: str
    recipients: tuple[str, ...]
    message_id: str
    """Without brackets."""
    date: datetime
    smtputf8: bool
    """An address is not ASCII: the server must offer SMTPUTF8."""


def outgoing(request: ReplyRequested, mailbox: Mailbox, now: datetime) -> Outgoing:
    """The reply as it goes out. TemplateError, or ValueError for a refused header value, no recipient, or
    a message over MAX_MESSAGE_BYTES (its bytes must fit in the ReplySent event)."""
    arguments = _compose_arguments(request, mailbox, now)
    sender = envelope_sender(request, mailbox)
    recipients = tuple(dict.fromkeys(a.address for a in request.to))
    international = not all(a.isascii() for a in (sender, *recipients))
    # The common reply is written directly; the email package composes any other (and refuses what it
    # refuses: a line break in a header value is a ValueError).
    data = None if international else reply_bytes(*arguments)
    if data is None:
        message = compose(*arguments)
        data = message.as_bytes(policy=SMTPUTF8_POLICY if international else SMTP_POLICY)
    if not recipients:
        raise ValueError("the reply has no recipient")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"the reply is {len(data)} bytes, over the limit of {MAX_MESSAGE_BYTES}")
    return Outgoing(
        data=data,
        envelope_from=sender,
        recipients=recipients,
        message_id=reply_message_id(request.reply_id, mailbox.email),
        date=now,
        smtputf8=international,
    )
