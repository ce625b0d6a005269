"""I/O edge: publishes ingest's events with kafka-python and restores its checkpoints from their topic."""

from __future__ import annotations

import logging
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from runtime.settings import KafkaSettings
from schemas import topics
from schemas.errors import MailroomError
from schemas.events import Event, IngestCheckpoint, parse_event

__all__ = ["PublishError", "Publisher", "read_checkpoints"]

logger = logging.getLogger(__name__)


class PublishError(MailroomError):
    """The broker did not take an event; the letters are read again on the next poll."""

    retriable = True


class Publisher:
    """Sends events and waits until the broker has them all (acks=all, idempotent producer)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._producer = KafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            acks="all",
            linger_ms=5,
            max_request_size=kafka.max_message_bytes,
            client_id="mailroom-ingest",
        )

    def publish(self, items: list[tuple[topics.TopicSpec, str, Event]], timeout: float = 60.0) -> None:
        futures = [
            self._producer.send(self._kafka.topic(spec), key=key.encode(), value=event.to_bytes())
            for spec, key, event in items
        ]
        try:
            for future in futures:
                future.get(timeout=timeout)
        except KafkaError as exc:
            raise PublishError(f"the broker did not take the events: {exc}") from exc

    def close(self) -> None:
        self._producer.close(timeout=10)


def read_checkpoints(kafka: KafkaSettings, timeout: float = 60.0) -> dict[tuple[str, str], IngestCheckpoint]:
    """The latest checkpoint per (mailbox, folder), read from the compacted checkpoint topic."""
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    try:
        name = kafka.topic(topics.INGEST_CHECKPOINTS)
        tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or set())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        found: dict[tuple[str, str], IngestCheckpoint] = {}
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise PublishError("reading the ingest checkpoints took too long")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    point = parse_event(IngestCheckpoint, record.value)
                    found[(point.mailbox_id, point.folder)] = point
        return found
    finally:
        consumer.close()
