"""I/O edge: publishes ingest's events with kafka-python and restores its checkpoints from their topic."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError

from runtime import metrics
from runtime.settings import KafkaSettings
from runtime.snapshot import read_topic
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

    def publish(
        self, items: Sequence[tuple[topics.TopicSpec, str, Event | None]], timeout: float = 60.0
    ) -> None:
        """Sends the events (None: a tombstone, deleting the key from a compacted topic) and waits until
        the broker has them all. Safe to call from several threads at once."""
        futures = [
            self._producer.send(
                self._kafka.topic(spec), key=key.encode(), value=None if event is None else event.to_bytes()
            )
            for spec, key, event in items
        ]
        try:
            for future in futures:
                future.get(timeout=timeout)
        except KafkaError as exc:
            raise PublishError(f"the broker did not take the events: {exc}") from exc
        for spec, key, event in items:
            metrics.published("ingest", spec, key, event)

    def close(self) -> None:
        self._producer.close(timeout=10)


def read_checkpoints(kafka: KafkaSettings, timeout: float = 60.0) -> dict[tuple[str, str], IngestCheckpoint]:
    """The latest checkpoint per (mailbox, folder), read from the compacted checkpoint topic."""
    found: dict[tuple[str, str], IngestCheckpoint] = {}
    try:
        for record in read_topic(kafka, topics.INGEST_CHECKPOINTS, timeout):
            if record.value is None:
                continue
            point = parse_event(IngestCheckpoint, record.value)
            found[(point.mailbox_id, point.folder)] = point
    except TimeoutError as exc:
        raise PublishError(f"reading the ingest checkpoints took too long: {exc}") from exc
    return found
