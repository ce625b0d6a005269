"""What a worker has already done, read back from its own output topics (I/O: kafka-python).

A worker's outputs are facts with deterministic ids, so its outputs are its memory: the converter knows
which leads exist from the leads topic, the responder which replies went out from the outcomes topic.
A ledger reads its topics from the start, and again up to their current end whenever the worker gets
partitions, before it handles anything: a record written just before a crash, or by the instance that
held the partition before, is seen, and the work is not done twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence

from kafka import KafkaConsumer, TopicPartition

from runtime.settings import KafkaSettings
from schemas.errors import MailroomError
from schemas.topics import TopicSpec

__all__ = ["LedgerError", "TopicLedger", "field_of"]

logger = logging.getLogger(__name__)

Fold = Callable[[TopicSpec, bytes], None]


class LedgerError(MailroomError):
    """The ledger's topics could not be read to their end in time; the worker tries again."""

    retriable = True


class TopicLedger:
    """Feeds every message of `specs` to `fold`, once each, oldest first per partition."""

    def __init__(
        self,
        kafka: KafkaSettings,
        specs: Sequence[TopicSpec],
        fold: Fold,
        forget: Callable[[], None] = lambda: None,
    ) -> None:
        self._names = {kafka.topic(spec): spec for spec in specs}
        self._fold = fold
        self._forget = forget
        self._consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers, group_id=None, enable_auto_commit=False
        )
        self._assigned: list[TopicPartition] = []
        self.stale = True
        """Set when the worker got partitions: `catch_up` must run before the next message is handled."""

    def _partitions(self) -> list[TopicPartition]:
        tps = [
            TopicPartition(name, p)
            for name in self._names
            for p in sorted(self._consumer.partitions_for_topic(name) or set())
        ]
        new = [tp for tp in tps if tp not in self._assigned]
        if new:
            self._assigned = tps
            self._consumer.assign(tps)
            self._consumer.seek_to_beginning(*new)
        return tps

    def catch_up(self, timeout: float = 60.0) -> int:
        """Reads up to the end the topics have now; returns how many messages were folded."""
        tps = self._partitions()
        ends = self._consumer.end_offsets(tps)
        read = 0
        deadline = time.monotonic() + timeout
        while any(self._consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise LedgerError(f"reading {', '.join(self._names)} to the end took over {timeout:.0f} s")
            for tp, records in self._consumer.poll(timeout_ms=200).items():
                for record in records:
                    if record.value is not None:
                        self._fold(self._names[tp.topic], record.value)
                        read += 1
        self.stale = False
        if read:
            logger.info("ledger: %d records read from %s", read, ", ".join(self._names))
        return read

    def rewind(self) -> None:
        """Forgets everything folded (`forget`) and reads the topics again from the start before the next
        message is handled: what the worker remembered of outputs the broker never took is gone."""
        self._forget()
        self._assigned = []
        self.stale = True

    async def ensure_current(self) -> None:
        """Catches up (in a thread: kafka-python blocks) if the worker got partitions since the last time."""
        if self.stale:
            await asyncio.to_thread(self.catch_up)

    def close(self) -> None:
        self._consumer.close()


def field_of(data: bytes, name: str) -> str | None:
    """A top-level field of an event's JSON (e.g. `event_id`), or None when the bytes have none."""
    try:
        value = json.loads(data)
    except ValueError:
        logger.warning("ledger: a record that is not JSON was skipped")
        return None
    return str(value[name]) if isinstance(value, dict) and value.get(name) is not None else None
