"""Pure: the admin's forms as configuration, and the configuration's errors at the fields they concern.

A form posts fields named by their path in the mailbox (`imap.host`, `case.owner`) or rule
(`conditions.0.value`, `template.body`); a change is the whole configuration with one mailbox replaced,
validated exactly as `mailroom config apply` validates a file (the models, every template compiled and
rendered, no secret in clear), then planned as `apply` plans it. An error is a `FormError`: messages by
field name ("" for the form as a whole).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mailroom import configuration
from mailroom.configuration import Change
from responder.render import check_templates
from runtime.configfeed import ConfigState
from schemas.config import AutoResponseRule, Mailbox, MailroomConfig
from schemas.errors import ConfigError

__all__ = [
    "SECRET_PARTS",
    "FormError",
    "Prepared",
    "config_document",
    "field_of",
    "mailbox_document",
    "prepare",
    "rule_document",
    "rule_id_for",
    "rules_in_order",
    "secret_state",
]

Form = Mapping[str, Any]
"""Field name -> value (a string, or a list of strings for repeated fields such as `folders`)."""

SECRET_PARTS = ("imap", "smtp")
_PROCESSING = ("none", "lead", "case")
_UNION_MEMBERS = {"ReplyTemplate", "str", "SecretStr", "EnvSecret", "FileSecret", "function-after"}


@dataclass
class FormError(Exception):
    """The form was refused: a message per field name ("" for the form as a whole); nothing changed."""

    errors: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(f"{k or 'form'}: {v}" for k, v in self.errors.items())


@dataclass(frozen=True)
class Prepared:
    """A change ready to publish: what `apply` would publish, and the secret files to write first (path ->
    value)."""

    changes: list[Change]
    secret_files: dict[Path, str]


def _text(form: Form, name: str) -> str:
    value = form.get(name, "")
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value).strip()


def _list(form: Form, name: str) -> list[str]:
    value = form.get(name, [])
    values = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in values if str(v).strip()]


def _comma(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    """Sets a value given in the form; an empty one drops the key (the model's default applies)."""
    if value in ("", None):
        target.pop(key, None)
    else:
        target[key] = value


def config_document(state: ConfigState) -> dict[str, Any]:
    """The topic's configuration as the document `apply` takes (what `config export` writes)."""
    return {
        "templates": {
            name: v.template.model_dump(mode="json", exclude_none=True) for name, v in state.templates.items()
        },
        "mailboxes": [v.mailbox.model_dump(mode="json", exclude_none=True) for v in state.mailboxes.values()],
    }


def secret_state(box: Mailbox | None, part: str) -> str:
    """What a form says of a stored password: never its value, nor where it is kept."""
    settings = getattr(box, part, None) if box is not None else None
    secret = getattr(settings, "password", None)
    if secret is None:
        return "not set"
    return "set (leave blank to keep)"


def mailbox_document(
    form: Form, old: Mailbox | None, secrets_dir: Path, token: str
) -> tuple[dict[str, Any], dict[Path, str]]:
    """The mailbox the form describes, over the old one (what the form does not show stays), and the secret
    files a typed password needs (kept as `{file: PATH}` references, never in clear)."""
    doc: dict[str, Any] = old.model_dump(mode="json", exclude_none=True) if old is not None else {}
    box_id = old.id if old is not None else _text(form, "id")
    doc["id"] = box_id
    for name in ("organization", "label", "email"):
        doc[name] = _text(form, name)
    files: dict[Path, str] = {}
    for part in SECRET_PARTS:
        settings = dict(doc.get(part) or {})
        for name in ("host", "port", "security", "username"):
            _set(settings, name, _text(form, f"{part}.{name}"))
        settings["verify_certificates"] = bool(_text(form, f"{part}.verify_certificates"))
        typed = str(form.get(f"{part}.password", "") or "")
        if typed:
            safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", box_id) or "mailbox"
            path = (secrets_dir / f"{safe_id}-{part}-{token}").resolve()
            files[path] = typed
            settings["password"] = {"file": str(path)}
        doc[part] = settings
    folders = _list(form, "folders") + _comma(_text(form, "folders_other"))
    doc["folders"] = list(dict.fromkeys(folders))
    kind = _text(form, "processing.type") or "none"
    processing: dict[str, Any] = {"type": kind}
    if kind in ("lead", "case"):
        processing["ignore_automated"] = bool(_text(form, f"{kind}.ignore_automated"))
        names: tuple[str, ...] = (
            ("owner", "source", "channel") if kind == "lead" else ("owner", "assignee", "status")
        )
        names += ("priority",) if kind == "case" else ()
        for name in names:
            _set(processing, name, _text(form, f"{kind}.{name}"))
        if kind == "case":
            processing["tags"] = _comma(_text(form, "case.tags"))
    doc["processing"] = processing
    _set(doc, "reply_policy", _text(form, "reply_policy"))
    limits = dict(doc.get("limits") or {})
    for name in ("per_thread", "per_sender_per_hour", "per_sender_per_day", "robot_senders"):
        _set(limits, name, _text(form, f"limits.{name}"))
    limits["reply_to_spam"] = bool(_text(form, "limits.reply_to_spam"))
    doc["limits"] = limits
    doc["authorized"] = {
        "users": _comma(_text(form, "authorized.users")),
        "roles": _comma(_text(form, "authorized.roles")),
    }
    return doc, files


def rules_in_order(box: Mailbox) -> list[AutoResponseRule]:
    """The rules as the grid shows them: by position, then as written."""
    return [r for _, r in sorted(enumerate(box.rules), key=lambda pair: (pair[1].position, pair[0]))]


def rule_id_for(name: str, taken: set[str]) -> str:
    """A new rule's id made of its name, unique in the mailbox."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "rule"
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    return candidate


def _conditions(form: Form) -> list[dict[str, Any]]:
    """The condition builder's rows, in their order (`conditions.N.field` ...)."""
    numbers = sorted(
        {int(m.group(1)) for key in form for m in [re.fullmatch(r"conditions\.(\d+)\.field", key)] if m}
    )
    rows = []
    for n in numbers:
        target = _text(form, f"conditions.{n}.field")
        if target == "header":
            target = f"header:{_text(form, f'conditions.{n}.header')}"
        row: dict[str, Any] = {"field": target, "operator": _text(form, f"conditions.{n}.operator")}
        value = str(form.get(f"conditions.{n}.value", "") or "")
        if value.strip():
            regex = row["operator"] in ("matches_regex", "does_not_match_regex")
            row["value"] = value if regex else value.strip()
        if _text(form, f"conditions.{n}.case_sensitive"):
            row["case_sensitive"] = True
        rows.append(row)
    return rows


def rule_document(form: Form, old: AutoResponseRule | None, rule_id: str, position: int) -> dict[str, Any]:
    """The rule the form describes (its `created_at` kept: `apply` dates a new rule when it publishes it)."""
    doc: dict[str, Any] = old.model_dump(mode="json", exclude_none=True) if old is not None else {}
    doc.update(id=rule_id, name=_text(form, "name"), active=bool(_text(form, "active")))
    doc.setdefault("position", position)
    doc["conditions"] = _conditions(form)
    choice = _text(form, "template_choice") or "custom"
    if choice == "custom":
        doc["template"] = {
            "type": _text(form, "template.type") or "plain",
            "subject": str(form.get("template.subject", "") or ""),
            "body": str(form.get("template.body", "") or ""),
        }
    else:
        doc["template"] = choice
    return doc


def field_of(loc: tuple[Any, ...], box_index: int | None, rule_index: int | None) -> str:
    """The form field a validation error's location names ("" when it is not one of this form's)."""
    rest = list(loc)
    if box_index is None or rest[:2] != ["mailboxes", box_index]:
        return ""
    rest = rest[2:]
    if rule_index is not None:
        if rest[:2] != ["rules", rule_index]:
            return ""
        rest = rest[2:]
    if len(rest) > 1 and rest[0] == "processing" and rest[1] in _PROCESSING:
        rest = rest[1:]
    return ".".join(str(part) for part in rest if str(part) not in _UNION_MEMBERS)


def _message(error: Mapping[str, Any]) -> str:
    text = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return text


def _whole_config_field(message: str, rule: bool) -> str:
    """Where a message about the configuration as a whole belongs (a clash with another mailbox)."""
    if rule:
        if "template" in message:
            return "template_choice"
        return "name" if "rule id" in message else ""
    for words, name in (("address", "email"), ("label", "label"), ("mailbox id", "id")):
        if words in message:
            return name
    return ""


def _template_field(message: str) -> str:
    """Where a template error belongs: `template.subject` or `template.body`."""
    after = message.split("template", 1)[-1] if "template" in message else message
    for part in ("subject", "body"):
        if re.search(rf"(^|[\s:(]){part}\b", after):
            return f"template.{part}"
    return "template.body"


def prepare(
    document: dict[str, Any],
    state: ConfigState,
    now: datetime,
    who: str,
    box_index: int | None,
    rule_index: int | None = None,
    required: Mapping[str, str] | None = None,
    after: Callable[[MailroomConfig], MailroomConfig] | None = None,
) -> list[Change]:
    """Validates `document` as `config apply` validates a file and plans its publication; FormError with
    each problem at its field. `required`: fields the form needs filled (name -> value); `after`: one more
    pure step on the validated configuration (save a rule's template under a name)."""
    errors: dict[str, str] = {}
    for name, value in (required or {}).items():
        if not value.strip():
            errors[name] = "required"
    if errors:
        raise FormError(errors)
    try:
        config = MailroomConfig.model_validate(document)
    except ValidationError as exc:
        for error in exc.errors():
            name = field_of(tuple(error["loc"]), box_index, rule_index)
            message = _message(error)
            if not error["loc"]:
                name = _whole_config_field(message, rule_index is not None)
            elif not name:
                message = f"{'.'.join(str(p) for p in error['loc'])}: {message}"
            errors.setdefault(name, message)
        raise FormError(errors) from None
    try:
        if after is not None:
            config = after(config)
        check_templates(config)
        configuration.refuse_clear_secrets(config)
    except ConfigError as exc:
        message = str(exc)
        if "template" in message and rule_index is not None:
            raise FormError({_template_field(message): message}) from None
        raise FormError({"": message}) from None
    return configuration.plan(config, state, now, who)
