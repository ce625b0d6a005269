"""Pure: renders reply templates in a jinja2 sandbox; checks them when the configuration is loaded.

Variables: `letter` (subject, reply_subject, from_name, from_address, to, cc, date, text_body,
message_id), `mailbox` (label, email), `rule` (name), `record` (type "lead" or "case" and id of the record
the letter creates, else None), `now`. An unknown variable or field is an error, at load and at render:
the check at load renders every template for two sample letters, one with every value a letter may have
and one without those some letters lack.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from responder.errors import TemplateError
from responder.sandbox import MAX_SECONDS, Sandbox, Variable, render_limited
from schemas.config import MailroomConfig, NamedTemplate, ReplyTemplate
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


def check_template(
    template: ReplyTemplate,
    label: str = "Acme Support",
    email: str = "support@acme.example",
    rule_name: str = "Acknowledge",
) -> None:
    """Compiles subject and body and renders them, as the responder would, for the sample letters to a
    mailbox `label` <`email`> by a rule `rule_name`; TemplateError on a syntax error, a variable nobody
    provides, or any failure rendering (an unknown field, an unsafe attribute, a size or time limit),
    saying which part and, when only the sparse sample fails, that it did."""
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
    for sample, letter in _samples(email, _names_text_body(template)):
        variables = template_variables(letter, label, email, rule_name, _SAMPLE_NOW)
        for part, source, html in (
            ("subject", template.subject, False),
            ("body", template.body, template.type == "html"),
        ):
            try:
                _rendered(source, html, variables, MAX_SECONDS)
            except TemplateError as exc:
                raise TemplateError(f"{part}{sample}: {exc}") from None


def check_templates(config: MailroomConfig) -> None:
    """Every template a rule can send, each language variant of the named ones, compiles, names only
    known variables and renders for the sample letters (`check_template`); else ConfigError naming the
    named template and its variant, or the mailbox and rule of an inline one, the part and the problem."""
    for name, named in config.templates.items():
        label, email, rule_name = _first_user(config, name)
        for where, template in _variants(name, named):
            try:
                check_template(template, label, email, rule_name)
            except TemplateError as exc:
                raise ConfigError(f"{where}: {exc}") from None
    for box in config.mailboxes:
        for rule in box.rules:
            if isinstance(rule.template, str):
                continue
            try:
                check_template(rule.template, box.label, box.email, rule.name)
            except TemplateError as exc:
                raise ConfigError(f"mailbox {box.id!r}, rule {rule.id!r}: template {exc}") from None


_SAMPLE_NOW = datetime(2024, 5, 6, 7, 15, tzinfo=UTC)
_SPARSE = ", for a letter with no record, sender name, date, cc or subject"


def _samples(email: str, text_body: bool) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The letters every template is tried on, as the matcher makes a request's letter fields (with
    `record` among them), each with what an error adds to name it: one with every optional value present
    (a record, a sender name, a date, a cc: the branches a guard like `{% if record %}` opens) and one
    without them (`record` none, `from_name` and `subject` empty, `date` none, no cc), as some letters
    come: a template must render for both."""
    full: dict[str, Any] = {
        "subject": "My printer is broken",
        "reply_subject": "Re: My printer is broken",
        "from_name": "Ann Lee",
        "from_address": "ann@customer.example",
        "to": [email],
        "cc": ["bob@customer.example"],
        "date": "2024-05-06T07:08:09+00:00",
        "message_id": "printer-1@customer.example",
        "record": {"type": "case", "id": "6f1c2a9e-3b5d-5e7f-8a9b-0c1d2e3f4a5b"},
    }
    sparse: dict[str, Any] = {
        **full,
        "subject": "",
        "reply_subject": "Re: (no subject)",
        "from_name": "",
        "cc": [],
        "date": None,
        "record": None,
    }
    if text_body:
        full["text_body"] = "Hello,\n\nthe printer on floor 2 smokes.\n\nAnn"
        sparse["text_body"] = ""
    return ("", full), (_SPARSE, sparse)


def _names_text_body(template: ReplyTemplate) -> bool:
    """Whether a request for this template carries the letter's text body: the matcher's rule
    (`matcher.decision.names_text_body`), kept here as well because workers do not import each other."""
    return "text_body" in template.subject or "text_body" in template.body


def _variants(name: str, named: NamedTemplate) -> list[tuple[str, ReplyTemplate]]:
    """Each language variant of a named template as a reply carries it, with how an error names it."""
    by_language = named.by_language()
    default = f"templates.{name}" + (f" (default variant, {named.language})" if named.variants else "")
    return [
        (default, by_language[named.language.lower()]),
        *((f"templates.{name}.variants.{tag}", by_language[tag.lower()]) for tag in named.variants),
    ]


def _first_user(config: MailroomConfig, name: str) -> tuple[str, str, str]:
    """The mailbox label, address and rule name of the first rule using the named template (a realistic
    `mailbox` and `rule` for its check); samples when no rule uses it."""
    for box in config.mailboxes:
        for rule in box.rules:
            if rule.template == name:
                return box.label, box.email, rule.name
    return "Acme Support", "support@acme.example", "Acknowledge"


@lru_cache(maxsize=1024)
def _compiled(source: str, html: bool) -> Template:
    """A template compiled once and reused for every reply it renders (compiling costs far more than
    rendering); a new configuration brings new sources."""
    return (_HTML if html else _PLAIN).from_string(source)


def render(template: ReplyTemplate, variables: dict[str, Any], seconds: float = MAX_SECONDS) -> RenderedReply:
    """The reply `template` makes of `variables`, in the sandbox (read-only inputs, at most MAX_CHARS
    characters each for subject and body, `seconds` in all); TemplateError otherwise."""
    started = time.monotonic()
    subject = _rendered(template.subject, False, variables, seconds)
    left = max(0.0, seconds - (time.monotonic() - started))
    body = _rendered(template.body, template.type == "html", variables, left)
    return RenderedReply(subject=one_line(subject), body=body, type=template.type)


def _rendered(source: str, html: bool, variables: dict[str, Any], seconds: float) -> str:
    """One part of a reply rendered in the sandbox; any failure is a TemplateError saying what it was."""
    try:
        return render_limited(_compiled(source, html), variables, seconds)
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


def template_variables(
    letter: dict[str, Any], label: str, email: str, rule_name: str, now: datetime
) -> dict[str, Any]:
    """The variables a template sees. The matcher carries `record` inside the request's letter fields
    (so the event's shape stays as it is); it is lifted out here to a variable of its own, None when
    absent (requests made before it existed)."""
    fields = dict(letter)
    record = fields.pop("record", None)
    return {
        "letter": Variable("letter", fields),
        "mailbox": Variable("mailbox", {"label": label, "email": email}),
        "rule": Variable("rule", {"name": rule_name}),
        "record": Variable("record", record) if isinstance(record, dict) else record,
        "now": now,
    }


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters folded to single spaces: a subject line."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())
