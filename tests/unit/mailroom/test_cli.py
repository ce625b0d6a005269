"""The entry point refuses a bad configuration before any worker starts (no servers needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _mailbox(**overrides: object) -> dict[str, object]:
    box: dict[str, object] = {
        "id": "support",
        "organization": "acme",
        "label": "Support",
        "email": "support@acme.test",
        "imap": {"host": "127.0.0.1", "username": "support", "password": "imap-secret-4711"},
        "smtp": {"host": "127.0.0.1", "password": "smtp-secret-0815", "username": "support"},
        "rules": [{"id": "ack", "name": "Ack", "template": {"subject": "Re", "body": "Thanks"}}],
    }
    box.update(overrides)
    return box


def _run(tmp_path: Path, config: object, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "mailroom.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    env = {
        "PATH": "/usr/bin:/bin",
        "MAILROOM_CONFIG": str(path),
        "MAILROOM_DATA_DIR": str(tmp_path / "data"),
        "MAILROOM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        # The file's checks, without a broker: with the default (auto) a worker asks the topic first.
        "MAILROOM_CONFIG_SOURCE": "file",
    }
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_accepts_a_valid_file_and_never_prints_secrets(tmp_path: Path) -> None:
    done = _run(tmp_path, {"mailboxes": [_mailbox()]}, "check-config")
    assert done.returncode == 0, done.stderr
    assert "1 mailboxes, valid" in done.stdout
    assert "secret" not in done.stdout + done.stderr


@pytest.mark.parametrize("worker", ["check-config", "ingest", "matcher", "converter", "responder"])
def test_a_bad_value_stops_every_worker_naming_the_field_path_and_value(tmp_path: Path, worker: str) -> None:
    rule = {
        "id": "ack",
        "name": "Ack",
        "template": "thanks",
        "conditions": [{"field": "subject", "operator": "sounds_like", "value": "x"}],
    }
    done = _run(
        tmp_path,
        {"templates": {"thanks": {"subject": "s", "body": "b"}}, "mailboxes": [_mailbox(rules=[rule])]},
        worker,
    )
    assert done.returncode == 2
    assert "mailboxes[0](support).rules[0](ack).conditions[0].operator" in done.stderr
    assert "'sounds_like'" in done.stderr
    assert "Traceback" not in done.stderr
    assert "secret" not in done.stderr


def test_not_yaml_stops_the_worker(tmp_path: Path) -> None:
    done = _run(tmp_path, "mailboxes: [\n  - id: {", "matcher")
    assert done.returncode == 2
    assert "not valid YAML" in done.stderr


def test_a_template_with_an_unknown_variable_stops_the_responder(tmp_path: Path) -> None:
    rule = {"id": "ack", "name": "Ack", "template": {"subject": "Re", "body": "Hi {{ customer.name }}"}}
    done = _run(tmp_path, {"mailboxes": [_mailbox(rules=[rule])]}, "responder")
    assert done.returncode == 2
    assert "mailbox 'support', rule 'ack'" in done.stderr
    assert "unknown variable(s) customer" in done.stderr


BROKEN_NAMED = {"thanks": {"subject": "Re: {{ letter.subject }}", "body": "Hello\n{% if letter.from_name %}"}}


@pytest.mark.parametrize("command", ["check-config", "ingest", "matcher", "converter", "responder"])
def test_a_syntax_error_in_a_named_template_stops_every_command(tmp_path: Path, command: str) -> None:
    rule = {"id": "ack", "name": "Ack", "template": "thanks"}
    done = _run(tmp_path, {"templates": BROKEN_NAMED, "mailboxes": [_mailbox(rules=[rule])]}, command)

    assert done.returncode == 2
    assert "templates.thanks: body: syntax error on line 2" in done.stderr
    assert "Traceback" not in done.stderr
    assert "valid" not in done.stdout


def test_check_config_names_the_mailbox_and_rule_of_a_bad_inline_template(tmp_path: Path) -> None:
    rules = [
        {"id": "ack", "name": "Ack", "template": {"subject": "Re", "body": "Thanks"}},
        {"id": "urgent", "name": "Urgent", "template": {"subject": "{{ ticket.number }}", "body": "b"}},
    ]
    done = _run(tmp_path, {"mailboxes": [_mailbox(rules=rules)]}, "check-config")

    assert done.returncode == 2
    assert "mailbox 'support', rule 'urgent': template subject: unknown variable(s) ticket" in done.stderr
    assert "Traceback" not in done.stderr
