"""Pure: builds a reply: threading headers, loop guards, deterministic Message-ID, text alternative.

`message_for` is the one way from a reply request to the message sent: the responder sends it, and
`mailroom rules test` shows it.
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import format_datetime

from responder.render import RenderedReply, render, template_variables
from schemas.config import Mailbox
from schemas.events import Address, ReplyRequested
from schemas.ids import LOOP_MARKER_HEADER, reply_message_id
from schemas.text import html_to_text

__all__ = ["compose", "message_for"]


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
    msg = EmailMessage()
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


def message_for(request: ReplyRequested, mailbox: Mailbox, now: datetime) -> EmailMessage:
    """The reply `request` asks for, rendered and composed as the mailbox sends it.

    TemplateError when the template fails on this letter; ValueError when the email package refuses a
    header value. Both are the reply's own failure (the responder records ReplyFailed)."""
    variables = template_variables(request.letter, mailbox.label, mailbox.email, request.rule_name, now)
    return compose(
        render(request.template, variables),
        Address(name=mailbox.label, address=mailbox.email),
        request.to,
        reply_message_id(request.reply_id, mailbox.email),
        request.in_reply_to,
        request.references,
        now,
    )
