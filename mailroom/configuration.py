"""`mailroom config apply | export | history`: the configuration topic written from a YAML file, read
back as one, and its versions listed.

Pure: `plan` compares a validated file with the topic's state and says what to publish; `describe`
puts a change in words; `export_yaml` writes a state as the file `apply` takes. I/O (`publish`,
`read_history`) at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from kafka import KafkaProducer
from pydantic import SecretStr

from mailroom.tables import table
from runtime.configfeed import ConfigState, template_key
from runtime.settings import KafkaSettings
from runtime.snapshot import read_topic
from schemas import topics
from schemas.config import Mailbox, MailroomConfig, NamedTemplate
from schemas.errors import ConfigError
from schemas.events import ConfigRemoved, Event, MailboxVersion, TemplateVersion, event_type_of, parse_event
from schemas.ids import deterministic_id

__all__ = [
    "Change",
    "describe",
    "export_yaml",
    "history_rows",
    "plan",
    "publish",
    "read_history",
    "refuse_clear_secrets",
    "render_history",
    "save_as_template",
]

_SECRET_FIELDS = ("password", "token", "client_secret", "refresh_token")


@dataclass(frozen=True)
class Change:
    """One record to publish: `kind` is added, changed or removed; `event` is None for a removal."""

    kind: str
    what: str
    """`mailbox` or `template`."""
    key: str
    name: str
    version: int
    event: MailboxVersion | TemplateVersion | None
    details: tuple[str, ...] = ()


def refuse_clear_secrets(config: MailroomConfig) -> None:
    """On the topic secrets are references ({env: NAME} or {file: PATH}), never values: ConfigError naming
    each field given in clear."""
    found = []
    for box in config.mailboxes:
        for part in ("imap", "smtp"):
            settings = getattr(box, part)
            for name in _SECRET_FIELDS:
                if isinstance(getattr(settings, name, None), SecretStr):
                    found.append(f"mailboxes[{box.id}].{part}.{name}")
            oauth = getattr(settings, "oauth2", None)
            for name in _SECRET_FIELDS:
                if oauth is not None and isinstance(getattr(oauth, name, None), SecretStr):
                    found.append(f"mailboxes[{box.id}].{part}.oauth2.{name}")
    if found:
        raise ConfigError(
            "secrets go on the configuration topic only as references ({env: NAME} or {file: PATH}), "
            f"never in clear: {', '.join(found)}"
        )


def _dated(box: Mailbox, before: Mailbox | None, now: datetime) -> Mailbox:
    """The mailbox with every rule's `created_at` set: as the file says, else as the rule's earlier
    version had it, else now (a rule answers only letters received after it first existed)."""
    earlier = {r.id: r.created_at for r in before.rules} if before is not None else {}
    rules = tuple(
        r if r.created_at is not None else r.model_copy(update={"created_at": earlier.get(r.id) or now})
        for r in box.rules
    )
    return box.model_copy(update={"rules": rules})


def plan(config: MailroomConfig, state: ConfigState, now: datetime, who: str) -> list[Change]:
    """What publishing `config` over `state` takes: templates first (mailboxes may name them), then
    mailboxes, then removals (mailboxes before the templates they named)."""
    changes: list[Change] = []
    for name, template in config.templates.items():
        old = state.templates.get(name)
        if old is not None and old.template == template:
            continue
        version = old.version + 1 if old else 1
        event = TemplateVersion(
            # With the time: a template deleted and made anew starts its versions again.
            event_id=deterministic_id("template-version", name, version, now.isoformat()),
            occurred_at=now,
            name=name,
            template=template,
            version=version,
            changed_by=who,
            created_at=old.created_at if old else now,
        )
        details = _differences(_plain(old.template) if old else None, _plain(template))
        changes.append(
            Change(
                "changed" if old else "added", "template", template_key(name), name, version, event, details
            )
        )
    for box in config.mailboxes:
        old_box = state.mailboxes.get(box.id)
        dated = _dated(box, old_box.mailbox if old_box else None, now)
        if old_box is not None and old_box.mailbox == dated:
            continue
        version = old_box.version + 1 if old_box else 1
        event_box = MailboxVersion(
            event_id=deterministic_id("mailbox-version", box.id, version, now.isoformat()),
            occurred_at=now,
            mailbox=dated,
            version=version,
            changed_by=who,
            created_at=old_box.created_at if old_box else now,
        )
        details = _differences(_plain(old_box.mailbox) if old_box else None, _plain(dated))
        changes.append(
            Change("changed" if old_box else "added", "mailbox", box.id, box.id, version, event_box, details)
        )
    wanted = {b.id for b in config.mailboxes}
    for box_id, old_box in sorted(state.mailboxes.items()):
        if box_id not in wanted:
            changes.append(Change("removed", "mailbox", box_id, box_id, old_box.version + 1, None))
    for name, old in sorted(state.templates.items()):
        if name not in config.templates:
            changes.append(Change("removed", "template", template_key(name), name, old.version + 1, None))
    return changes


def save_as_template(config: MailroomConfig, mailbox_id: str, rule_id: str, name: str) -> MailroomConfig:
    """The original's "Save response as email template": the rule's own template becomes a named template
    of the mailbox's organization, and the rule refers to it. ConfigError when that cannot be."""
    box = config.mailbox(mailbox_id)
    if box is None:
        raise ConfigError(f"no mailbox {mailbox_id!r}")
    rule = next((r for r in box.rules if r.id == rule_id), None)
    if rule is None:
        raise ConfigError(f"mailbox {mailbox_id!r} has no rule {rule_id!r}")
    if isinstance(rule.template, str):
        raise ConfigError(f"rule {rule_id!r} uses the named template {rule.template!r} already")
    if name in config.templates:
        raise ConfigError(f"a template named {name!r} exists already")
    named = NamedTemplate(**rule.template.model_dump(), organization=box.organization)
    rules = tuple(r.model_copy(update={"template": name}) if r.id == rule_id else r for r in box.rules)
    boxes = tuple(
        b.model_copy(update={"rules": rules}) if b.id == mailbox_id else b for b in config.mailboxes
    )
    try:
        return MailroomConfig(templates={**config.templates, name: named}, mailboxes=boxes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _plain(model: Any) -> dict[str, Any]:
    value: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    if "rules" in value:  # rules compared by id, not by position in a list
        value["rules"] = {r["id"]: r for r in value["rules"]}
    return value


def _differences(old: dict[str, Any] | None, new: dict[str, Any], path: str = "") -> tuple[str, ...]:
    """The changed fields as `path: old -> new` (a rule added or removed as `rules.ID added|removed`)."""
    if old is None:
        return ()
    found: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        where = f"{path}{key}"
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if a is None or b is None:
            found.append(f"{where} {'added' if a is None else 'removed'}")
        elif isinstance(a, dict) and isinstance(b, dict):
            found.extend(_differences(a, b, f"{where}."))
        else:
            found.append(f"{where}: {_short(a)} -> {_short(b)}")
    return tuple(found)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(changes: Iterable[Change]) -> str:
    """The changes as lines a person reads: `+ mailbox support (version 1)`, `~ ...` with each changed
    field below, `- ...`."""
    lines = []
    for c in changes:
        sign = {"added": "+", "changed": "~", "removed": "-"}[c.kind]
        lines.append(f"{sign} {c.what} {c.name} ({c.kind}, version {c.version})")
        lines.extend(f"    {d}" for d in c.details)
    return "\n".join(lines) if lines else "no changes"


def export_yaml(state: ConfigState) -> str:
    """The configuration the topic holds, as the YAML file `config apply` takes (applying it changes
    nothing: every rule carries the `created_at` it has on the topic)."""
    document: dict[str, Any] = {}
    if state.templates:
        document["templates"] = {
            name: v.template.model_dump(mode="json", exclude_none=True)
            for name, v in sorted(state.templates.items())
        }
    document["mailboxes"] = [
        v.mailbox.model_dump(mode="json", exclude_none=True) for _, v in sorted(state.mailboxes.items())
    ]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def history_rows(records: Iterable[tuple[str, bytes]], key: str | None = None) -> list[dict[str, Any]]:
    """Every version on the history topic (of one key), oldest first, with what changed from the one
    before: dicts with key, what, version, at, by, kind, changes."""
    last: dict[str, dict[str, Any]] = {}
    rows = []
    for record_key, value in records:
        if key is not None and record_key != key and record_key != template_key(key):
            continue
        kind = event_type_of(value)
        what = "template" if record_key.startswith("template:") else "mailbox"
        event: Event
        if kind == "ConfigRemoved":
            event = parse_event(ConfigRemoved, value)
            rows.append(
                _row(record_key, what, event.version, event.occurred_at, event.changed_by, "removed", ())
            )
            last.pop(record_key, None)
            continue
        if kind == "TemplateVersion":
            version_t = parse_event(TemplateVersion, value)
            plain, number, at, by = (
                _plain(version_t.template),
                version_t.version,
                version_t.occurred_at,
                version_t.changed_by,
            )
        elif kind == "MailboxVersion":
            version_m = parse_event(MailboxVersion, value)
            plain, number, at, by = (
                _plain(version_m.mailbox),
                version_m.version,
                version_m.occurred_at,
                version_m.changed_by,
            )
        else:
            continue
        before = last.get(record_key)
        rows.append(
            _row(
                record_key,
                what,
                number,
                at,
                by,
                "changed" if before else "added",
                _differences(before, plain),
            )
        )
        last[record_key] = plain
    return rows


def render_history(rows: list[dict[str, Any]]) -> str:
    """The versions as a table a person reads, one line each, with what changed."""
    if not rows:
        return "no versions published yet"
    cells = [("WHAT", "NAME", "VERSION", "WHEN (UTC)", "BY", "CHANGE")]
    for row in rows:
        change = row["kind"] + (": " + "; ".join(row["changes"]) if row["changes"] else "")
        when = row["at"][:19].replace("T", " ")
        cells.append((row["what"], row["name"], str(row["version"]), when, row["by"], change))
    return "\n".join(table(cells))


def _row(
    key: str, what: str, version: int, at: datetime, by: str, kind: str, changes: tuple[str, ...]
) -> dict[str, Any]:
    name = key.removeprefix("template:")
    return {
        "what": what,
        "name": name,
        "version": version,
        "at": at.isoformat(),
        "by": by,
        "kind": kind,
        "changes": list(changes),
    }


# -- I/O ------------------------------------------------------------------------------------------------


def publish(kafka: KafkaSettings, changes: list[Change], now: datetime, who: str) -> None:
    """Writes the changes in order to the configuration topic (a tombstone for a removal) and to the
    history topic, and waits until the broker has them all."""
    producer = KafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        acks="all",
        max_request_size=kafka.max_message_bytes,
        client_id="mailroom-config",
    )
    try:
        futures = []
        for change in changes:
            key = change.key.encode()
            if change.event is None:
                removed = ConfigRemoved(
                    event_id=deterministic_id("config-removed", change.key, change.version, now.isoformat()),
                    occurred_at=now,
                    key=change.key,
                    version=change.version,
                    changed_by=who,
                )
                futures.append(producer.send(kafka.topic(topics.CONFIG), key=key, value=None))
                futures.append(
                    producer.send(kafka.topic(topics.CONFIG_HISTORY), key=key, value=removed.to_bytes())
                )
            else:
                data = change.event.to_bytes()
                futures.append(producer.send(kafka.topic(topics.CONFIG), key=key, value=data))
                futures.append(producer.send(kafka.topic(topics.CONFIG_HISTORY), key=key, value=data))
            producer.flush()  # in order: a mailbox's template is on the broker before the mailbox
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)


def read_history(kafka: KafkaSettings, timeout: float = 60.0) -> Iterator[tuple[str, bytes]]:
    for record in read_topic(kafka, topics.CONFIG_HISTORY, timeout):
        yield record.key.decode(), record.value
