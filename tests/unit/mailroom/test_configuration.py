"""`config apply` planning, export and history, on configuration states built in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from mailroom.configuration import (
    describe,
    export_yaml,
    history_rows,
    plan,
    refuse_clear_secrets,
    save_as_template,
)
from runtime.configfeed import ConfigState, template_key
from runtime.loading import parse_config
from schemas.config import MailroomConfig
from schemas.errors import ConfigError
from schemas.events import ConfigRemoved

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def _config(**changes: object) -> MailroomConfig:
    box = {
        "id": "support",
        "organization": "acme",
        "label": "Acme Support",
        "email": "support@acme.example",
        "imap": {"host": "imap.acme.example", "username": "support", "password": {"env": "IMAP_PW"}},
        "smtp": {"host": "smtp.acme.example"},
        "rules": [{"id": "ack", "name": "Acknowledge", "template": "thanks"}],
    }
    box.update(changes)
    return parse_config(
        yaml.safe_dump(
            {"templates": {"thanks": {"subject": "Thanks", "body": "We got it"}}, "mailboxes": [box]}
        )
    )


def _applied(config: MailroomConfig, state: ConfigState, now: datetime) -> ConfigState:
    """The state after publishing `plan(config, state)`, as a follower folds it."""
    for change in plan(config, state, now, "ops"):
        state.fold(change.key, None if change.event is None else change.event.to_bytes())
    return state


def test_a_first_apply_adds_templates_before_mailboxes_and_dates_every_rule() -> None:
    changes = plan(_config(), ConfigState(), T0, "ops")
    assert [(c.kind, c.what, c.name, c.version) for c in changes] == [
        ("added", "template", "thanks", 1),
        ("added", "mailbox", "support", 1),
    ]
    box = changes[1].event
    assert box is not None and box.mailbox.rules[0].created_at == T0  # type: ignore[union-attr]
    assert (box.changed_by, box.created_at) == ("ops", T0)
    assert describe(changes).splitlines() == [
        "+ template thanks (added, version 1)",
        "+ mailbox support (added, version 1)",
    ]


def test_applying_the_same_file_again_or_the_export_changes_nothing() -> None:
    state = _applied(_config(), ConfigState(), T0)
    assert plan(_config(), state, T1, "ops") == []
    exported = parse_config(export_yaml(state))
    assert plan(exported, state, T1, "ops") == []
    assert exported == state.config()


def test_a_changed_rule_keeps_its_date_and_a_new_rule_gets_the_moment_it_was_published() -> None:
    state = _applied(_config(), ConfigState(), T0)
    rules = [
        {"id": "ack", "name": "Acknowledge all", "template": "thanks"},
        {"id": "vip", "name": "VIP", "template": "thanks"},
    ]
    (change,) = plan(_config(rules=rules), state, T1, "ana")
    assert (change.kind, change.version, change.event.changed_by) == ("changed", 2, "ana")  # type: ignore[union-attr]
    dated = {r.id: r.created_at for r in change.event.mailbox.rules}  # type: ignore[union-attr]
    assert dated == {"ack": T0, "vip": T1}
    assert 'rules.ack.name: "Acknowledge" -> "Acknowledge all"' in change.details
    assert "rules.vip added" in change.details


def test_what_is_gone_from_the_file_is_removed_mailboxes_before_templates() -> None:
    state = _applied(_config(), ConfigState(), T0)
    empty = parse_config("mailboxes: []\n")
    changes = plan(empty, state, T1, "ops")
    assert [(c.kind, c.key, c.version, c.event) for c in changes] == [
        ("removed", "support", 2, None),
        ("removed", template_key("thanks"), 2, None),
    ]
    assert _applied(empty, state, T1).empty()


def test_secrets_in_clear_are_refused_with_their_field_paths() -> None:
    clear = _config(imap={"host": "imap.acme.example", "username": "support", "password": "hunter2"})
    with pytest.raises(ConfigError, match=r"mailboxes\[support\]\.imap\.password") as caught:
        refuse_clear_secrets(clear)
    assert "hunter2" not in str(caught.value)
    refuse_clear_secrets(_config())  # references pass


def test_history_lists_every_version_with_who_and_what_changed() -> None:
    state = ConfigState()
    records: list[tuple[str, bytes]] = []
    for config, now, who in (
        (_config(), T0, "ops"),
        (_config(label="Support desk"), T1, "ana"),
        (parse_config("mailboxes: []\n"), T1 + timedelta(minutes=5), "ops"),
    ):
        for change in plan(config, state, now, who):
            if change.event is not None:
                records.append((change.key, change.event.to_bytes()))
            else:
                removed = ConfigRemoved(
                    event_id="x", occurred_at=now, key=change.key, version=change.version, changed_by=who
                )
                records.append((change.key, removed.to_bytes()))
            state.fold(change.key, None if change.event is None else change.event.to_bytes())
    rows = history_rows(records, "support")
    assert [(r["version"], r["by"], r["kind"]) for r in rows] == [
        (1, "ops", "added"),
        (2, "ana", "changed"),
        (3, "ops", "removed"),
    ]
    assert rows[1]["changes"] == ['label: "Acme Support" -> "Support desk"']
    assert [r["name"] for r in history_rows(records)] == ["thanks", "support", "support", "support", "thanks"]


def test_a_rules_own_template_is_saved_as_a_named_template_of_its_organization() -> None:
    inline = [{"id": "ack", "name": "Ack", "template": {"subject": "Hi", "body": "Got it", "type": "html"}}]
    saved = save_as_template(_config(rules=inline), "support", "ack", "got-it")
    assert saved.templates["got-it"].organization == "acme"
    assert (saved.templates["got-it"].subject, saved.templates["got-it"].type) == ("Hi", "html")
    assert saved.mailbox("support").rules[0].template == "got-it"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="uses the named template 'got-it' already"):
        save_as_template(saved, "support", "ack", "other")
    with pytest.raises(ConfigError, match="a template named 'thanks' exists already"):
        save_as_template(_config(rules=inline), "support", "ack", "thanks")
    with pytest.raises(ConfigError, match="has no rule 'nope'"):
        save_as_template(saved, "support", "nope", "x")
