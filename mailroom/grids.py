"""Pure: the configuration's grids as the original product showed them, a table for people and JSON for
scripts; no I/O.

    mailroom mailboxes list [--organization ORG] [--json]   one row per mailbox
    mailroom rules list --mailbox ID [--json]               a mailbox's rules in the order they are tried
    mailroom templates list [--organization ORG] [--json]   the named templates and the rules using them

Nothing here reads a secret: every row is built field by field, never by dumping a model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mailroom.tables import table, utc_text
from schemas.conditions import ConditionOperator
from schemas.config import AutoResponseRule, Condition, ConditionField, Mailbox, MailroomConfig, ReplyPolicy
from schemas.errors import UnknownMailboxError

__all__ = [
    "condition_text",
    "conditions_text",
    "mailboxes_json",
    "render_mailboxes",
    "render_rules",
    "render_templates",
    "rules_json",
    "templates_json",
]

_Op = ConditionOperator

# How an operator reads in a sentence; the others read as their name with spaces.
_OPERATOR_WORDS = {_Op.MATCHES_REGEX: "matches", _Op.DOES_NOT_MATCH_REGEX: "does not match"}
_WHOLE_WORDS = {
    (ConditionField.HAS_ATTACHMENTS, _Op.IS_TRUE): "has attachments",
    (ConditionField.HAS_ATTACHMENTS, _Op.IS_FALSE): "has no attachments",
    (ConditionField.RECEIVED, _Op.BEFORE): "received before",
    (ConditionField.RECEIVED, _Op.AFTER): "received at or after",
}
_POLICY_WORDS = {
    ReplyPolicy.FIRST_MATCH: "the first active rule that matches answers",
    ReplyPolicy.ALL_MATCHING: "every active rule that matches answers",
}


def condition_text(condition: Condition) -> str:
    """One condition in words: `subject contains "invoice"`, `from matches /@vip\\.example$/`,
    `header x-priority is any of "1", "1 (Highest)"`, `received before 2024-12-24`."""
    field, op = condition.field, condition.operator
    whole = _WHOLE_WORDS.get((field, op)) if isinstance(field, ConditionField) else None
    if whole is not None:
        return f"{whole} {condition.value}" if condition.value else whole
    name = field.value.replace("_", "-") if isinstance(field, ConditionField) else f"header {field.name}"
    words = [name, _OPERATOR_WORDS.get(op, op.value.replace("_", " "))]
    if op in (_Op.MATCHES_REGEX, _Op.DOES_NOT_MATCH_REGEX):
        words.append(f"/{condition.value}/")
    elif op in (_Op.IS_ANY_OF, _Op.IS_NOT_ANY_OF):
        words.append(", ".join(_quoted(value) for value in condition.values()))
    elif isinstance(condition.value, str) and condition.value:
        words.append(_quoted(condition.value))
    return " ".join(words) + (" (case-sensitive)" if condition.case_sensitive else "")


def conditions_text(rule: AutoResponseRule) -> str:
    """A rule's conditions, AND-combined, in words; a rule without any answers "every letter"."""
    return " and ".join(condition_text(c) for c in rule.conditions) or "every letter"


def _grid(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """The table, each cell on one line (a label or a subject may hold a line break)."""
    return table([tuple(" ".join(cell.splitlines()) for cell in row) for row in rows])


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# mailboxes list


def _mailboxes(config: MailroomConfig, organization: str | None) -> list[Mailbox]:
    boxes = [b for b in config.mailboxes if organization is None or b.organization == organization]
    return sorted(boxes, key=lambda b: (b.organization.casefold(), b.label.casefold(), b.id))


def mailboxes_json(config: MailroomConfig, organization: str | None = None) -> list[dict[str, Any]]:
    """The mailboxes (of one organization, or all), by organization then label."""
    return [
        {
            "id": box.id,
            "organization": box.organization,
            "label": box.label,
            "email": box.email,
            "processing": box.processing.type,
            "folders": list(box.folders),
            "rules": {"active": len(box.active_rules()), "total": len(box.rules)},
            "imap": {
                "host": box.imap.host,
                "port": box.imap.port,
                "security": box.imap.security.value,
                "auth": box.imap.auth,
            },
        }
        for box in _mailboxes(config, organization)
    ]


def render_mailboxes(config: MailroomConfig, organization: str | None = None) -> str:
    """A grid, one mailbox a row, by organization then label."""
    boxes = _mailboxes(config, organization)
    if not boxes:
        return _nothing("mailboxes", config, organization)
    head = ("ID", "ORGANIZATION", "LABEL", "EMAIL", "PROCESSING", "FOLDERS", "RULES", "IMAP", "AUTH")
    rows = [head]
    for box in boxes:
        imap = f"{box.imap.host}:{box.imap.port} {box.imap.security.value}"
        rules = f"{len(box.active_rules())}/{len(box.rules)} active"
        folders = ", ".join(box.folders)
        kind, auth = box.processing.type, box.imap.auth
        rows.append((box.id, box.organization, box.label, box.email, kind, folders, rules, imap, auth))
    return "\n".join(_grid(rows))


def _nothing(what: str, config: MailroomConfig, organization: str | None) -> str:
    if organization is None:
        return f"no {what} configured"
    known = ", ".join(sorted({b.organization for b in config.mailboxes})) or "none"
    return f"no {what} for organization {organization!r} (organizations: {known})"


# rules list


def _mailbox(config: MailroomConfig, mailbox_id: str) -> Mailbox:
    box = config.mailbox(mailbox_id)
    if box is None:
        known = ", ".join(b.id for b in config.mailboxes) or "none"
        raise UnknownMailboxError(f"no mailbox {mailbox_id!r} in the configuration (mailboxes: {known})")
    return box


def _ordered(box: Mailbox) -> list[tuple[int | None, AutoResponseRule]]:
    """The active rules as the matcher tries them, numbered from 1, then the inactive ones as written."""
    active: list[tuple[int | None, AutoResponseRule]] = list(enumerate(box.active_rules(), 1))
    return active + [(None, rule) for rule in box.rules if not rule.active]


def _template_text(rule: AutoResponseRule) -> str:
    if isinstance(rule.template, str):
        return rule.template
    return f"custom ({rule.template.type}): {rule.template.subject}"


def rules_json(config: MailroomConfig, mailbox_id: str) -> dict[str, Any]:
    """The mailbox's rules in the order they are tried (`order` 1, 2, ...; None for inactive ones, last);
    UnknownMailboxError when the configuration has no such mailbox."""
    box = _mailbox(config, mailbox_id)
    rules = []
    for order, rule in _ordered(box):
        template = rule.template
        rules.append(
            {
                "order": order,
                "position": rule.position,
                "active": rule.active,
                "id": rule.id,
                "name": rule.name,
                "conditions": [c.model_dump(mode="json") for c in rule.conditions],
                "conditions_text": conditions_text(rule),
                "template": {"name": template}
                if isinstance(template, str)
                else {"name": None, "type": template.type, "subject": template.subject},
                "created_at": rule.created_at.isoformat() if rule.created_at else None,
            }
        )
    return {"mailbox_id": box.id, "reply_policy": box.reply_policy.value, "rules": rules}


def render_rules(config: MailroomConfig, mailbox_id: str) -> str:
    """A line naming the mailbox and its reply policy, then a grid, one rule a row: the active ones in the
    order they are tried, then the inactive ones; UnknownMailboxError for an unknown mailbox."""
    box = _mailbox(config, mailbox_id)
    head = f"Mailbox {box.id} ({box.label} <{box.email}>)"
    if not box.rules:
        return f"{head}: no auto-response rules"
    policy = f"reply policy {box.reply_policy.value}: {_POLICY_WORDS[box.reply_policy]}"
    count = f"{len(box.rules)} rule{'s' if len(box.rules) > 1 else ''}"
    head += f": {count}, {len(box.active_rules())} active, {policy}"
    rows = [("#", "POSITION", "ACTIVE", "NAME", "ID", "TEMPLATE", "CREATED (UTC)", "CONDITIONS")]
    for order, rule in _ordered(box):
        rows.append(
            (
                "-" if order is None else str(order),
                str(rule.position),
                "yes" if rule.active else "no",
                rule.name,
                rule.id,
                _template_text(rule),
                utc_text(rule.created_at),
                conditions_text(rule),
            )
        )
    return "\n".join([head, *_grid(rows)])


# templates list


def templates_json(config: MailroomConfig, organization: str | None = None) -> list[dict[str, Any]]:
    """The named templates an organization's rules may use (its own and those for all; every one when
    None), those for all first, then by organization and name; each with the rules using it (of that
    organization's mailboxes)."""
    found = []
    for name, template in config.templates.items():
        if organization is not None and template.organization not in (None, organization):
            continue
        used_by = [
            {"mailbox_id": box.id, "rule_id": rule.id, "active": rule.active}
            for box in config.mailboxes
            if organization is None or box.organization == organization
            for rule in box.rules
            if rule.template == name
        ]
        found.append(
            {
                "name": name,
                "organization": template.organization,
                "type": template.type,
                "subject": template.subject,
                "used_by": used_by,
            }
        )
    return sorted(found, key=lambda t: ((t["organization"] or "").casefold(), t["name"].casefold()))


def render_templates(config: MailroomConfig, organization: str | None = None) -> str:
    """A grid, one named template a row, with the rules using it as `mailbox/rule`."""
    found = templates_json(config, organization)
    if not found:
        return _nothing("named templates", config, organization)
    rows = [("NAME", "ORGANIZATION", "TYPE", "SUBJECT", "USED BY")]
    for entry in found:
        used = ", ".join(
            f"{use['mailbox_id']}/{use['rule_id']}" + ("" if use["active"] else " (inactive)")
            for use in entry["used_by"]
        )
        org = entry["organization"] or "all"
        rows.append((entry["name"], org, entry["type"], entry["subject"], used or "-"))
    return "\n".join(_grid(rows))
