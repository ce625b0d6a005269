"""Builds test letters as bytes, the way a mail client would send them."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def letter(
    sender: str,
    to: str,
    subject: str = "Hello",
    body: str = "Hi there",
    *,
    message_id: str | None = None,
    html: str | None = None,
    html_only: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """The letter's bytes and its Message-ID (without brackets); `html_only` sends `html` alone."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    mid = message_id or make_msgid(idstring=secrets.token_hex(4), domain="customer.test")[1:-1]
    msg["Message-ID"] = f"<{mid}>"
    for name, value in (headers or {}).items():
        msg[name] = value
    if html_only and html is not None:
        msg.set_content(html, subtype="html")
        return msg.as_bytes(), mid
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes(), mid
