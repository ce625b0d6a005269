"""Where the web admin reads and writes: the configuration topic (followed live on a thread of its own, so
a page shows what the workers see), the ingest health topic, the dead letters and the letters received.

`Store` is the seam; `KafkaStore` is the real one, `MemoryStore` keeps everything in the process (for unit
tests of the pages). Writing goes through `mailroom.configuration.publish`, as `mailroom config apply`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from datetime import datetime
from typing import Protocol

from kafka import KafkaConsumer

from mailroom import configuration, deadletters
from mailroom.admin import create_topics
from mailroom.configuration import Change
from mailroom.mailboxes import latest_health
from runtime.configfeed import ConfigState, fold_records, follower
from runtime.settings import KafkaSettings
from runtime.snapshot import read_topic
from schemas import topics
from schemas.errors import EventError
from schemas.events import DeadLetter, LetterReceived, MailboxHealth, event_type_of, parse_event

__all__ = ["KafkaStore", "MemoryStore", "Store"]

logger = logging.getLogger(__name__)


class Store(Protocol):
    def state(self) -> ConfigState:
        """The configuration as it is now (a copy: the caller may change it)."""

    def publish(self, changes: list[Change], now: datetime, who: str) -> None:
        """Publishes the changes; returns once `state` shows them."""

    def health(self) -> dict[str, MailboxHealth]: ...

    def dead_letters(self) -> list[DeadLetter]: ...

    def letters(self, mailbox_id: str) -> list[LetterReceived]:
        """The mailbox's letters received, oldest first."""

    def close(self) -> None: ...


def _fold(state: ConfigState, changes: list[Change]) -> None:
    for change in changes:
        state.fold(change.key, change.event.to_bytes() if change.event is not None else None)


class MemoryStore:
    """Everything in the process: what unit tests of the pages use."""

    def __init__(self, state: ConfigState | None = None) -> None:
        self._state = state or ConfigState()
        self.published: list[list[Change]] = []
        self.healths: dict[str, MailboxHealth] = {}
        self.dead: list[DeadLetter] = []
        self.received: list[LetterReceived] = []

    def state(self) -> ConfigState:
        return copy.deepcopy(self._state)

    def publish(self, changes: list[Change], now: datetime, who: str) -> None:
        self.published.append(changes)
        _fold(self._state, changes)

    def health(self) -> dict[str, MailboxHealth]:
        return dict(self.healths)

    def dead_letters(self) -> list[DeadLetter]:
        return list(self.dead)

    def letters(self, mailbox_id: str) -> list[LetterReceived]:
        return [letter for letter in self.received if letter.mailbox_id == mailbox_id]

    def close(self) -> None:
        pass


class KafkaStore:
    """The pipeline's topics. The configuration topic is read from its start and followed on a thread."""

    def __init__(self, kafka: KafkaSettings, timeout: float = 30.0) -> None:
        self.kafka = kafka
        self.timeout = timeout
        self._state = ConfigState()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._consumer, self._parts = follower(kafka, "mailroom-admin")
        if not self._parts:  # a new pipeline: its topics are made, as `mailroom topics` makes them
            self._consumer.close()
            create_topics(kafka)
            deadline = time.monotonic() + timeout
            while True:
                self._consumer, self._parts = follower(kafka, "mailroom-admin")
                if self._parts or time.monotonic() > deadline:
                    break
                self._consumer.close()
                time.sleep(0.2)
        self._thread = threading.Thread(target=self._follow, name="configuration topic", daemon=True)
        self._thread.start()
        self._wait_caught_up()

    def _follow(self) -> None:
        try:
            while not self._stop.is_set():
                batches = self._consumer.poll(timeout_ms=300)
                with self._lock:
                    for records in batches.values():
                        fold_records(self._state, records)
                    self._positions = {tp: self._consumer.position(tp) for tp in self._parts}
                self._ready.set()
        except Exception:
            logger.exception("following the configuration topic stopped")
        finally:
            self._consumer.close()

    def _wait_caught_up(self) -> None:
        """Waits until the follower has read every record the topic has now."""
        probe = KafkaConsumer(bootstrap_servers=self.kafka.bootstrap_servers, group_id=None)
        try:
            ends = probe.end_offsets(self._parts)
        finally:
            probe.close()
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._ready.is_set():
                with self._lock:
                    positions = dict(getattr(self, "_positions", {}))
                if all(positions.get(tp, -1) >= end for tp, end in ends.items()):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"reading {self.kafka.topic(topics.CONFIG)} took over {self.timeout:.0f} s")

    def state(self) -> ConfigState:
        with self._lock:
            return copy.deepcopy(self._state)

    def publish(self, changes: list[Change], now: datetime, who: str) -> None:
        configuration.publish(self.kafka, changes, now, who)
        self._wait_caught_up()

    def health(self) -> dict[str, MailboxHealth]:
        records = read_topic(self.kafka, topics.INGEST_HEALTH, self.timeout, tombstones=True)
        return latest_health((r.key, r.value) for r in records)

    def dead_letters(self) -> list[DeadLetter]:
        return deadletters.read_dead_letters(self.kafka, self.timeout)

    def letters(self, mailbox_id: str) -> list[LetterReceived]:
        found = []
        for record in read_topic(self.kafka, topics.LETTERS_RECEIVED, self.timeout):
            if record.key != mailbox_id.encode() or event_type_of(record.value) != "LetterReceived":
                continue
            try:
                found.append(parse_event(LetterReceived, record.value))
            except EventError:
                continue
        return sorted(found, key=lambda letter: letter.occurred_at)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
