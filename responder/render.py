"""Pure: renders reply templates in a jinja2 sandbox; checks them when the configuration is loaded.

Variables: `letter` (subject, reply_subject, from_name, from_address, to, cc, date, text_body,
message_id), `mailbox` (label, email), `rule` (name), `record` (type "lead" or "case" and id of the record
the letter creates, else None), `now`. An unknown variable is an error, at load and at render.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from responder.errors import TemplateError
from responder.sandbox import MAX_SECONDS, Sandbox, render_limited
from schemas.config import MailroomConfig, ReplyTemplate
from schemas.errors import ConfigError

__all__ = [
    "VARIABLES",
    "RenderedReply",
    "check_template",
    "check_templates",
    "one_line",
    "render",
    "template_variables",
]

VARIABLES = frozenset({"letter", "mailbox", "rule", "record", "now"})

_PLAIN = Sandbox(autoescape=False)
_HTML = Sandbox(autoescape=True)


@dataclass(frozen=True)
class RenderedReply:
    subject: str
    """One line: line breaks and other control characters from any source are folded to spaces."""
    body: str
    type: str


def _env(template: ReplyTemplate) -> Sandbox:
    return _HTML if template.type == "html" else _PLAIN


def check_template(template: ReplyTemplate) -> None:
    """Compiles subject and body; TemplateError on a syntax error or a variable nobody provides."""
    for part, source in (("subject", template.subject), ("body", template.body)):
        env = _PLAIN if part == "subject" else _env(template)
        try:
            tree = env.parse(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{part}: syntax error on line {exc.lineno}: {exc.message}") from None
        if any(True for _ in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport))):
            raise TemplateError(f"{part}: a reply template cannot extend, include or import other templates")
        unknown = meta.find_undeclared_variables(tree) - VARIABLES
        if unknown:
            names, known = ", ".join(sorted(unknown)), ", ".join(sorted(VARIABLES))
            raise TemplateError(f"{part}: unknown variable(s) {names}; known: {known}")


def check_templates(config: MailroomConfig) -> None:
    """Every template a rule can send compiles and names only known variables; else ConfigError naming
    the named template, or the mailbox and rule of an inline one."""
    for name, template in config.templates.items():
        try:
            check_template(template)
        except TemplateError as exc:
            raise ConfigError(f"templates.{name}: {exc}") from None
    for box in config.mailboxes:
        for rule in box.rules:
            if isinstance(rule.template, str):
                continue
            try:
                check_template(rule.template)
            except TemplateError as exc:
                raise ConfigError(f"mailbox {box.id!r}, rule {rule.id!r}: template {exc}") from None


@lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> Template:
    """A template compiled once and reused for every reply it renders (compiling costs far more than
    rendering); a new configuration brings new sources."""
    return (_HTML if html else _PLAIN).from_string(source)


def render(template: ReplyTemplate, variables: dict[str, Any], seconds: float = MAX_SECONDS) -> RenderedReply:
    """The reply `template` makes of `variables`, in the sandbox (read-only inputs, at most MAX_CHARS
    characters each for subject and body, `seconds` in all); TemplateError otherwise."""
    started = time.monotonic()
    try:
        subject = render_limited(_compiled(template.subject, False), variables, seconds)
        left = max(0.0, seconds - (time.monotonic() - started))
        body = render_limited(_compiled(template.body, template.type == "html"), variables, left)
    except TemplateError:
        raise
    except TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error on line {exc.lineno}: {exc.message}") from None
    except SecurityError as exc:
        raise TemplateError(f"the template tried something the sandbox forbids: {exc}") from None
    except UndefinedError as exc:
        raise TemplateError(f"unknown variable: {exc.message}") from None
    except Exception as exc:  # templates are code from the configuration: any failure is the template's
        raise TemplateError(f"rendering failed: {type(exc).__name__}: {exc}") from None
    return RenderedReply(subject=one_line(subject), body=body, type=template.type)


def template_variables(
    letter: dict[str, Any], label: str, email: str, rule_name: str, now: datetime
) -> dict[str, Any]:
    """The variables a template sees. The matcher carries `record` inside the request's letter fields
    (so the event's shape stays as it is); it is lifted out here to a variable of its own, None when
    absent (requests made before it existed)."""
    fields = dict(letter)
    record = fields.pop("record", None)
    return {
        "letter": fields,
        "mailbox": {"label": label, "email": email},
        "rule": {"name": rule_name},
        "record": record,
        "now": now,
    }


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters folded to single spaces: a subject line."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())
