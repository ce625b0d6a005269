"""Builders for the unit tests: a mailbox with rules, a configuration and letters as bytes.

Everything is deterministic (fixed dates and Message-IDs) so that ids computed from them are stable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from schemas.config import (
    AutoResponseRule,
    Condition,
    ImapSettings,
    Mailbox,
    MailroomConfig,
    ReplyTemplate,
    SmtpSettings,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
MAILBOX_EMAIL = "support@acme.example"
TEMPLATE = ReplyTemplate(subject="{{ letter.reply_subject }}", body="Thank you, {{ letter.from_name }}.")


def condition(field: str, operator: str, value: Any = None, case_sensitive: bool = False) -> Condition:
    return Condition(field=field, operator=operator, value=value, case_sensitive=case_sensitive)


def rule(
    rule_id: str = "ack",
    *conditions: Condition,
    position: int = 0,
    active: bool = True,
    template: ReplyTemplate | str = TEMPLATE,
) -> AutoResponseRule:
    return AutoResponseRule(
        id=rule_id,
        name=f"rule {rule_id}",
        position=position,
        active=active,
        conditions=conditions,
        template=template,
    )


def mailbox(*rules: AutoResponseRule, mailbox_id: str = "support", **fields: Any) -> Mailbox:
    values: dict[str, Any] = {
        "id": mailbox_id,
        "organization": "acme",
        "label": "Acme Support" if mailbox_id == "support" else f"Acme {mailbox_id.title()}",
        "email": MAILBOX_EMAIL if mailbox_id == "support" else f"{mailbox_id}@acme.example",
        "imap": ImapSettings(host="imap.acme.example", username="support", password="imap-pw"),
        "smtp": SmtpSettings(host="smtp.acme.example"),
        "rules": rules,
    }
    values.update(fields)
    return Mailbox(**values)


def config(*mailboxes: Mailbox, templates: dict[str, ReplyTemplate] | None = None) -> MailroomConfig:
    return MailroomConfig(templates=templates or {}, mailboxes=mailboxes)


def letter_bytes(
    *,
    sender: str | None = "Ann Lee <ann@customer.example>",
    to: str = MAILBOX_EMAIL,
    subject: str = "Hello",
    body: str = "Hi there",
    message_id: str | None = "m1@customer.example",
    html: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A well-formed letter as a mail client sends it; `html` adds an html alternative."""
    msg = EmailMessage()
    if sender is not None:
        msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 06 May 2024 07:08:09 +0000"
    if message_id is not None:
        msg["Message-ID"] = f"<{message_id}>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes()
