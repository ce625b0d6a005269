"""Integration: `mailroom dead-letters list | show | reprocess` against a real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer

from deploy.local.pipeline import TopicReader
from schemas import topics
from schemas.events import DeadLetter, LetterReceived, parse_event
from schemas.ids import letter_id
from tests.integration.test_config_cli import GOOD, Cli
from tests.letters import letter

pytestmark = pytest.mark.integration


def _send(cli: Cli, spec: topics.TopicSpec, key: bytes, value: bytes, partition: int | None = None) -> int:
    producer = KafkaProducer(bootstrap_servers=cli.kafka.bootstrap_servers, acks="all")
    try:
        return int(
            producer.send(cli.kafka.topic(spec), key=key, value=value, partition=partition).get(30).offset
        )
    finally:
        producer.close()


def test_dead_letters_are_listed_shown_and_handed_back_to_the_stage_that_failed(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "mailroom.yaml").write_text(yaml.safe_dump(GOOD))
    received = cli.kafka.topic(topics.LETTERS_RECEIVED)
    offset = _send(cli, topics.LETTERS_RECEIVED, b"support", b'{"a message": "the matcher failed on"}', 1)
    failed = DeadLetter.of(
        "matcher",
        ValueError("unknown mailbox"),
        received,
        b"raw",
        "letter",
        partition=1,
        offset=offset,
        key=b"support",
        mailbox_id="support",
    )
    raw, message_id = letter("anna@customer.test", "support@acme.example", "Parsed too late")
    unparsed = DeadLetter.of(
        "ingest",
        ValueError("cannot make an event"),
        "imap:support/INBOX",
        raw,
        "letter",
        partition=7,
        offset=3,
        key=b"support",
        mailbox_id="support",
    )
    too_large = unparsed.model_copy(update={"event_id": "too-large", "error_type": "LetterTooLarge"})
    for dead in (failed, unparsed, too_large):
        _send(cli, topics.DEAD_LETTERS, b"support", dead.to_bytes())

    listed = json.loads(cli.run("dead-letters", "list", "--json").stdout)
    assert [(r["id"], r["stage"], r["reprocessable"]) for r in listed] == [
        (failed.event_id, "matcher", True),
        (unparsed.event_id, "ingest", True),
        ("too-large", "ingest", False),
    ]
    assert "MAILBOX" in cli.run("dead-letters", "list").stdout
    shown = cli.run("dead-letters", "show", failed.event_id).stdout
    assert "unknown mailbox" in shown and f"{received}[1]@{offset}" in shown

    env_file = {"MAILROOM_CONFIG_SOURCE": "file"}
    done = cli.run(
        "dead-letters", "reprocess", failed.event_id, unparsed.event_id, "--json", extra_env=env_file
    )
    assert done.returncode == 0, done.stderr
    reader = TopicReader(cli.kafka)
    try:
        records = reader.records(topics.LETTERS_RECEIVED)
    finally:
        reader.close()
    again = [r for r in records if r.value == b'{"a message": "the matcher failed on"}']
    assert [(r.partition, r.key) for r in again] == [(1, b"support"), (1, b"support")]
    made = [parse_event(LetterReceived, r.value) for r in records if r.value.startswith(b'{"schema_version"')]
    assert [(e.event_id, e.headers.message_id, e.uid) for e in made] == [
        (letter_id("support", "INBOX", 7, 3), message_id, 3)
    ]
    refused = cli.run("dead-letters", "reprocess", "too-large", "nope", extra_env=env_file)
    assert refused.returncode == 1
    assert "too-large  not reprocessed: the letter is over the size limit" in refused.stdout
    assert "nope  no such dead letter" in refused.stdout
