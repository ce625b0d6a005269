"""Integration: `mailroom config apply | export | history` against a real broker: the diff, dry runs, a
round trip through export, and bad input refused with nothing published."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka.admin import KafkaAdminClient

from deploy.local.pipeline import ROOT, TopicReader
from mailroom.admin import create_topics
from runtime.configfeed import read_state
from runtime.settings import KafkaSettings
from schemas import topics

pytestmark = pytest.mark.integration


def _mailbox(box_id: str, email: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": box_id,
        "organization": "acme",
        "label": f"Acme {box_id}",
        "email": email,
        "imap": {"host": "imap.acme.example", "username": email, "password": {"env": "IMAP_PASSWORD"}},
        "smtp": {"host": "smtp.acme.example", "username": email, "password": {"file": "/run/secrets/smtp"}},
        "rules": [{"id": "ack", "name": "Acknowledge", "template": "thanks"}],
        **extra,
    }


GOOD: dict[str, Any] = {
    "templates": {
        "thanks": {"subject": "Re: {{ letter.subject }}", "body": "Thank you, {{ letter.from_address }}."}
    },
    "mailboxes": [_mailbox("support", "support@acme.example"), _mailbox("sales", "sales@acme.example")],
}


class Cli:
    def __init__(self, kafka: KafkaSettings, workdir: Path) -> None:
        self.kafka, self.workdir = kafka, workdir

    def run(
        self, *args: str, config: dict[str, Any] | str | None = None, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        path = self.workdir / "mailroom.yaml"
        if config is not None:
            path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILROOM_")}
        env.update(
            MAILROOM_CONFIG=str(path),
            MAILROOM_KAFKA_BOOTSTRAP_SERVERS=self.kafka.bootstrap_servers,
            MAILROOM_KAFKA_NAMESPACE=self.kafka.namespace,
            MAILROOM_KAFKA_PARTITIONS=str(self.kafka.partitions),
            PYTHONPATH=str(ROOT),
        )
        env.update(extra_env or {})
        return subprocess.run(
            [sys.executable, "-m", "mailroom", *args], env=env, capture_output=True, text=True, timeout=120
        )

    def apply(self, config: dict[str, Any] | str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "config", "apply", "-f", str(self.workdir / "mailroom.yaml"), "--as", "ana", *args, config=config
        )

    def published(self) -> int:
        reader = TopicReader(self.kafka)
        try:
            return reader.count(topics.CONFIG) + reader.count(topics.CONFIG_HISTORY)
        finally:
            reader.close()


@pytest.fixture
def cli(kafka_servers: str, tmp_path: Path) -> Iterator[Cli]:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_servers, partitions=2, namespace=f"cfg{secrets.token_hex(4)}"
    )
    create_topics(kafka)
    yield Cli(kafka, tmp_path)
    admin = KafkaAdminClient(bootstrap_servers=kafka_servers)
    try:
        admin.delete_topics([kafka.topic(spec) for spec in topics.ALL_TOPICS])
    finally:
        admin.close()


def test_apply_shows_the_diff_publishes_only_changes_and_export_round_trips(cli: Cli) -> None:
    dry = cli.apply(GOOD, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ template thanks (added, version 1)" in dry.stdout
    assert "+ mailbox support (added, version 1)" in dry.stdout
    assert "dry run: nothing published" in dry.stdout
    assert cli.published() == 0

    done = cli.apply(GOOD)
    assert done.returncode == 0, done.stderr
    assert cli.published() == 6  # 3 records, each on the topic and in its history
    state = read_state(cli.kafka)
    assert sorted(state.mailboxes) == ["sales", "support"] and state.mailboxes["support"].changed_by == "ana"

    again = cli.apply(GOOD)
    assert (again.returncode, again.stdout.strip().splitlines()[0]) == (0, "no changes")
    exported = cli.run("config", "export")
    assert exported.returncode == 0, exported.stderr
    assert "IMAP_PASSWORD" in exported.stdout and "created_at" in exported.stdout
    assert cli.apply(exported.stdout).stdout.strip().splitlines()[0] == "no changes"
    assert cli.published() == 6

    changed = json.loads(json.dumps(GOOD))
    changed["mailboxes"][1]["label"] = "Acme Sales desk"
    changed["mailboxes"].pop(0)
    shown = cli.apply(changed).stdout
    assert '~ mailbox sales (changed, version 2)\n    label: "Acme sales" -> "Acme Sales desk"' in shown
    assert "- mailbox support (removed, version 2)" in shown
    history = json.loads(cli.run("config", "history", "sales", "--json").stdout)
    assert [(h["version"], h["by"], h["kind"]) for h in history] == [
        (1, "ana", "added"),
        (2, "ana", "changed"),
    ]
    assert history[1]["changes"] == ['label: "Acme sales" -> "Acme Sales desk"']
    table = cli.run("config", "history").stdout
    assert "support" in table and "removed" in table

    inline = json.loads(json.dumps(changed))
    inline["mailboxes"][0]["rules"] = [
        {"id": "hi", "name": "Hi", "template": {"subject": "Hi", "body": "Hello"}}
    ]
    assert cli.apply(inline).returncode == 0
    saved = cli.run(
        "templates", "save", "--mailbox", "sales", "--rule", "hi", "--name", "hello", "--as", "ana"
    )
    assert saved.returncode == 0, saved.stderr
    assert "+ template hello (added, version 1)" in saved.stdout
    state = read_state(cli.kafka)
    assert state.mailboxes["sales"].mailbox.rules[0].template == "hello"
    assert state.templates["hello"].template.organization == "acme"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("mailboxes: [\n", "YAML"),
        ({**GOOD, "mailboxes": [{**_mailbox("support", "support@acme.example"), "colour": "red"}]}, "colour"),
        (
            {
                **GOOD,
                "mailboxes": [
                    _mailbox(
                        "support",
                        "support@acme.example",
                        rules=[
                            {
                                "id": "bad",
                                "name": "Bad",
                                "template": "thanks",
                                "conditions": [
                                    {"field": "subject", "operator": "matches", "value": "(unclosed"}
                                ],
                            }
                        ],
                    )
                ],
            },
            "conditions",
        ),
        (
            {**GOOD, "templates": {"thanks": {"subject": "{{ letter.sujbect }}", "body": "x"}}},
            "sujbect",
        ),
        (
            {**GOOD, "mailboxes": [_mailbox("a", "same@acme.example"), _mailbox("b", "SAME@acme.example")]},
            "address",
        ),
        ({**GOOD, "templates": {}}, "unknown template 'thanks'"),
        (
            {
                **GOOD,
                "mailboxes": [
                    {
                        **_mailbox("support", "support@acme.example"),
                        "imap": {"host": "h", "username": "u", "password": "pw"},
                    }
                ],
            },
            "mailboxes[support].imap.password",
        ),
    ],
    ids=[
        "yaml",
        "unknown-field",
        "bad-regex",
        "broken-template",
        "duplicate-address",
        "unknown-template",
        "clear-secret",
    ],
)
def test_bad_input_is_refused_with_where_and_nothing_is_published(
    cli: Cli, config: Any, expected: str
) -> None:
    refused = cli.apply(config)
    assert refused.returncode == 2
    assert expected in refused.stderr
    assert "Traceback" not in refused.stderr
    assert cli.published() == 0
