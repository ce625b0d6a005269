"""`mailroom mailboxes list`, `rules list` and `templates list` through the entry point: exit codes, a row of
each table, the JSON, and never a secret (no servers needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mailroom import cli
from mailroom.cli import main
from runtime.loading import parse_config
from runtime.settings import WorkerSettings
from schemas.config import MailroomConfig

CONFIG = {
    "templates": {"thanks": {"subject": "Thanks for writing", "body": "We got it.", "organization": "acme"}},
    "mailboxes": [
        {
            "id": "support",
            "organization": "acme",
            "label": "Support",
            "email": "support@acme.test",
            "imap": {
                "host": "127.0.0.1",
                "port": 1143,
                "security": "none",
                "username": "support",
                "password": "imap-secret-4711",
            },
            "smtp": {"host": "127.0.0.1", "username": "support", "password": "smtp-secret-0815"},
            "processing": {"type": "case"},
            "rules": [
                {
                    "id": "urgent",
                    "name": "Urgent",
                    "conditions": [{"field": "subject", "operator": "contains", "value": "urgent"}],
                    "template": "thanks",
                },
                {"id": "ack", "name": "Acknowledge", "position": 1, "template": "thanks"},
            ],
        }
    ],
}


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mailroom.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    monkeypatch.setenv("MAILROOM_CONFIG", str(path))
    monkeypatch.setenv("MAILROOM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("MAILROOM_CONFIG_SOURCE", "file")
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    for secret in ("imap-secret-4711", "smtp-secret-0815"):
        assert secret not in out.out + out.err
    return code, out.out, out.err


@pytest.mark.usefixtures("configured")
def test_mailboxes_list_prints_a_row_per_mailbox_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "mailboxes", "list")

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "ORGANIZATION", "LABEL"]
    assert lines[1].split() == [
        "support",
        "acme",
        "Support",
        "support@acme.test",
        "case",
        "INBOX",
        "2/2",
        "active",
        "127.0.0.1:1143",
        "none",
        "password",
    ]

    code, out, _ = _run(capsys, "mailboxes", "list", "--organization", "acme", "--json")

    assert code == 0
    assert [(box["id"], box["imap"]) for box in json.loads(out)] == [
        ("support", {"host": "127.0.0.1", "port": 1143, "security": "none", "auth": "password"})
    ]


@pytest.mark.usefixtures("configured")
def test_rules_list_shows_the_rules_in_order_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "rules", "list", "--mailbox", "support")

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("Mailbox support (Support <support@acme.test>): 2 rules, 2 active")
    assert lines[2].split() == [
        "1",
        "0",
        "yes",
        "Urgent",
        "urgent",
        "thanks",
        "-",
        "subject",
        "contains",
        '"urgent"',
    ]
    assert lines[3].split() == ["2", "1", "yes", "Acknowledge", "ack", "thanks", "-", "every", "letter"]

    code, out, _ = _run(capsys, "rules", "list", "--mailbox", "support", "--json")

    assert code == 0
    found = json.loads(out)
    assert [(r["order"], r["id"], r["conditions_text"]) for r in found["rules"]] == [
        (1, "urgent", 'subject contains "urgent"'),
        (2, "ack", "every letter"),
    ]


@pytest.mark.usefixtures("configured")
def test_rules_list_of_an_unknown_mailbox_exits_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "rules", "list", "--mailbox", "sales", "--json")

    assert (code, out) == (2, "")
    assert err == "mailroom rules list: no mailbox 'sales' in the configuration (mailboxes: support)\n"


@pytest.mark.usefixtures("configured")
def test_templates_list_shows_who_uses_each_template(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "templates", "list")

    assert (code, err) == (0, "")
    assert out.splitlines()[1].split() == [
        "thanks",
        "acme",
        "plain",
        "Thanks",
        "for",
        "writing",
        "support/urgent,",
        "support/ack",
    ]

    code, out, _ = _run(capsys, "templates", "list", "--organization", "globex", "--json")

    assert (code, json.loads(out)) == (0, [])


def test_a_bad_configuration_exits_2(configured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configured.write_text("mailboxes: [{id: support}]\n")

    code, out, err = _run(capsys, "mailboxes", "list")

    assert (code, out) == (2, "")
    assert err.startswith(f"mailroom mailboxes list: {configured}: invalid configuration:")


@pytest.mark.usefixtures("configured")
def test_the_lists_show_the_configuration_current_config_gives(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = parse_config(
        """
mailboxes:
  - {id: elsewhere, organization: initech, label: Desk, email: desk@initech.test,
     imap: {host: imap.initech.test, username: desk, password: pw}, smtp: {host: smtp.initech.test}}
"""
    )

    def current(settings: WorkerSettings) -> MailroomConfig:
        return other

    monkeypatch.setattr(cli, "_current_config", current)

    code, out, _ = _run(capsys, "mailboxes", "list", "--json")

    assert code == 0
    assert [box["id"] for box in json.loads(out)] == ["elsewhere"]
