"""Pure: a reply template rendered for a sample letter, as the responder renders it (the rule form's live
preview); a template that would stop the configuration from loading shows its error instead."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from responder.errors import TemplateError
from responder.render import check_template, render, template_variables
from schemas.config import ReplyTemplate

__all__ = ["SAMPLE_LETTER", "preview"]

SAMPLE_LETTER: dict[str, Any] = {
    "subject": "My printer is broken",
    "reply_subject": "Re: My printer is broken",
    "from_name": "Ann Lee",
    "from_address": "ann@customer.example",
    "to": ["support@acme.example"],
    "cc": [],
    "date": "2024-05-06T07:08:09+00:00",
    "message_id": "printer-1@customer.example",
    "text_body": "Hello,\n\nthe printer on floor 2 smokes.\n\nAnn",
    "record": {"type": "case", "id": "6f1c2a9e-3b5d-5e7f-8a9b-0c1d2e3f4a5b"},
}
_NOW = datetime(2024, 5, 6, 7, 15, tzinfo=UTC)


def preview(
    kind: str, subject: str, body: str, label: str, email: str, rule_name: str
) -> dict[str, str | None]:
    """`{type, subject, body, error, field}`: the reply to the sample letter, or the error and the field
    (`template.subject` or `template.body`) it concerns."""
    kind = "html" if kind == "html" else "plain"
    template = ReplyTemplate(subject=subject, body=body, type=kind)
    try:
        check_template(template, label, email, rule_name or "Rule")
        letter = {**SAMPLE_LETTER, "to": [email]}
        rendered = render(template, template_variables(letter, label, email, rule_name or "Rule", _NOW))
    except TemplateError as exc:
        message = str(exc)
        part = "template.subject" if message.startswith("subject") else "template.body"
        return {"type": kind, "subject": None, "body": None, "error": message, "field": part}
    return {"type": kind, "subject": rendered.subject, "body": rendered.body, "error": None, "field": None}
