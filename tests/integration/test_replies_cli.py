"""Integration: `mailroom replies list` and `mailroom replies resend` against a real Kafka broker."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest
from kafka import KafkaProducer

from deploy.local.pipeline import TopicReader
from mailroom.admin import create_topics
from mailroom.cli import main
from runtime.settings import KafkaSettings
from schemas import topics
from schemas.events import (
    Address,
    Event,
    ReplyContent,
    ReplyDeferred,
    ReplyFailed,
    ReplyFiled,
    ReplyRequested,
    ReplySent,
)
from tests.unit.builders import NOW

pytestmark = pytest.mark.integration


def _request(reply_id: str) -> ReplyRequested:
    return ReplyRequested(
        event_id=reply_id,
        occurred_at=NOW,
        reply_id=reply_id,
        mailbox_id="support",
        kind="employee",
        author="olga",
        content=ReplyContent(subject="Re: Printer", body="Fixed."),
        to=(Address(address="ann@customer.example"),),
        in_reply_to="m1@customer.example",
        thread_id="m1@customer.example",
        mailbox_email="support@acme.example",
    )


@pytest.fixture
def kafka(kafka_servers: str, monkeypatch: pytest.MonkeyPatch) -> KafkaSettings:
    settings = KafkaSettings(
        bootstrap_servers=kafka_servers, partitions=2, namespace=f"rc{secrets.token_hex(4)}"
    )
    create_topics(settings)
    monkeypatch.setenv("MAILROOM_KAFKA_BOOTSTRAP_SERVERS", kafka_servers)
    monkeypatch.setenv("MAILROOM_KAFKA_NAMESPACE", settings.namespace)
    return settings


def _publish(kafka: KafkaSettings, spec: topics.TopicSpec, key: str, *events: Event) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for event in events:
        producer.send(kafka.topic(spec), key=key.encode(), value=event.to_bytes()).get(timeout=30)
    producer.close()


def test_failed_and_deferred_replies_are_listed_and_only_a_failed_one_is_resent(
    kafka: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    for reply_id in ("failed-1", "deferred-1", "sent-1"):
        _publish(kafka, topics.REPLIES_REQUESTED, "support", _request(reply_id))
    failed = ReplyFailed(
        event_id="o1",
        occurred_at=NOW,
        reply_id="failed-1",
        mailbox_id="support",
        reason="550 no such user",
        smtp_code=550,
        attempts=1,
    )
    deferred = ReplyDeferred(
        event_id="o2",
        occurred_at=NOW,
        reply_id="deferred-1",
        mailbox_id="support",
        reason="421 busy",
        smtp_code=421,
        attempts=4,
        first_failed_at=NOW,
        retry_at=NOW + timedelta(seconds=16),
    )
    sent = ReplySent(
        event_id="o3",
        occurred_at=NOW,
        reply_id="sent-1",
        mailbox_id="support",
        message_id="r@acme.example",
        to=("ann@customer.example",),
        smtp_code=250,
        message=b"x",
    )
    filed = ReplyFiled(
        event_id="o4",
        occurred_at=NOW,
        reply_id="sent-1",
        mailbox_id="support",
        message_id="r@acme.example",
        folder="Sent",
    )
    for event in (failed, deferred, sent, filed):
        _publish(kafka, topics.REPLY_OUTCOMES, event.reply_id, event)  # type: ignore[attr-defined]

    assert main(["replies", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main(["replies", "list"]) == 0
    table = capsys.readouterr().out
    code = main(["replies", "resend", "failed-1", "deferred-1", "sent-1", "--json"])
    done = json.loads(capsys.readouterr().out)

    assert [(r["reply_id"], r["state"], r["smtp_code"], r["attempts"]) for r in listed] == [
        ("failed-1", "failed", 550, 1),
        ("deferred-1", "deferred", 421, 4),
    ]
    assert table.splitlines()[0].split()[:6] == ["REPLY", "MAILBOX", "STATE", "CODE", "TRIES", "AT"]
    assert "550 no such user" in table
    assert code == 1  # not every reply named was resent
    assert done["failed-1"].startswith("resent")
    assert "being tried again" in done["deferred-1"] and "no failure" in done["sent-1"]
    reader = TopicReader(kafka)
    try:
        requests = reader.events(topics.REPLIES_REQUESTED, ReplyRequested)
    finally:
        reader.close()
    assert [(r.reply_id, r.resend) for r in requests if r.resend] == [("failed-1", True)]
