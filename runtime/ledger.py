"""What a stream worker has already done, for the partitions it owns (I/O: kafka-python).

A worker's outputs are facts with deterministic ids, so what it did is what it must remember: the
converter which leads exist, the responder which replies went out. The stream loop writes every output
to the partition its message came from, so all a partition's outputs, and what the worker must remember
of them, sit in the same partition number of each topic. Two records of them are read back:

- the worker's ledger topic (`mailroom.<stage>.ledger.v1`): a small fact per thing done (a letter's
  place in its thread, a record's id, a reply's final outcome), and after each batch a checkpoint that
  closes the batch's facts and names, per output topic, the offset up to which the partition's outputs
  are certainly on the broker (the checkpoint is written after the batch's acknowledgements);
- the tail of the output topics after the last checkpoint: outputs of a batch cut short by a crash. They
  are on the broker, but their facts may be missing, or written without them; so the facts of a batch
  no checkpoint closed are dropped, and those outputs are read instead. What the tail taught is written
  to the ledger as facts of a batch of its own, closed by a checkpoint at the tail's end, so the next
  rebuild need not read it again.

A rebuild reads only the owned partitions: small facts plus at most the last batch's outputs; its time
and memory grow with the ids and threads a worker owns, not with the letters' bytes. A topic others write
too (`foreign`: employees' replies on the requests topic) is read whole, skipping this worker's records.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from runtime.settings import KafkaSettings
from schemas import topics
from schemas.errors import MailroomError
from schemas.topics import TopicSpec

__all__ = [
    "STAGE_HEADER",
    "Fact",
    "Heal",
    "Ledger",
    "LedgerError",
    "checkpoint_record",
    "fact_record",
    "field_of",
    "new_batch",
]

logger = logging.getLogger(__name__)

STAGE_HEADER = "mailroom-stage"
"""A Kafka record header naming the stream worker that wrote the record."""

Fact = dict[str, Any]
FoldFact = Callable[[Fact], None]
FoldOutput = Callable[[TopicSpec, bytes], Fact | None]
"""Takes one output read back and returns the fact that describes it (None: nothing to remember)."""


class LedgerError(MailroomError):
    """The ledger's topics could not be read to their end in time; the worker tries again."""

    retriable = True


def new_batch() -> str:
    """A batch id: facts are trusted only once a checkpoint with their batch id follows them."""
    return uuid.uuid4().hex


def fact_record(batch: str, fact: bytes) -> bytes:
    """A ledger record of one fact (`fact` is its JSON)."""
    return b'{"b":"' + batch.encode() + b'","fact":' + fact + b"}"


def checkpoint_record(batch: str, positions: dict[str, int]) -> bytes:
    """A ledger record closing `batch`: `positions` names, per output topic, the offset from which the
    partition's outputs are not certainly covered by facts."""
    return json.dumps({"b": batch, "checkpoint": positions}, separators=(",", ":")).encode()


@dataclass
class Heal:
    """What a rebuild learned from a partition's tail, to be written to the ledger as a closed batch."""

    facts: list[Fact] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)


class Ledger:
    """The state of a stream worker's owned partitions, rebuilt whenever they change.

    `fold_fact` takes a fact read from the ledger; `fold_output` an output read from a topic's tail (or a
    foreign topic) and returns its fact; `forget` clears the state before a rebuild."""

    def __init__(
        self,
        kafka: KafkaSettings,
        stage: str,
        outputs: Sequence[TopicSpec],
        fold_fact: FoldFact,
        fold_output: FoldOutput,
        forget: Callable[[], None],
        foreign: Sequence[TopicSpec] = (),
    ) -> None:
        self.kafka = kafka
        self.stage = stage
        self.spec = topics.LEDGERS[stage]
        self.outputs = tuple(outputs)
        self._tracked = {kafka.topic(spec) for spec in self.outputs}
        self._fold_fact = fold_fact
        self._fold_output = fold_output
        self._forget = forget
        self._foreign = tuple(foreign)
        self._consumer: KafkaConsumer | None = None
        self.owned: frozenset[int] = frozenset()
        self.positions: dict[tuple[str, int], int] = {}
        """(output topic, partition) -> the offset up to which its outputs are covered by facts."""
        self.stale = True
        """Set when the owned partitions changed: `rebuild` must run before the next message."""

    def assign(self, partitions: Sequence[int]) -> None:
        self.owned = frozenset(partitions)
        self.stale = True

    def rewind(self) -> None:
        """Forgets everything: the next message waits for a rebuild (after outputs the broker never took)."""
        self.stale = True

    def note_acked(self, topic: str, partition: int, offset: int) -> None:
        """A record at `offset` is on the broker (only the outputs read back are tracked)."""
        if topic not in self._tracked:
            return
        key = (topic, partition)
        if offset + 1 > self.positions.get(key, 0):
            self.positions[key] = offset + 1

    def checkpoint(self, partition: int) -> dict[str, int]:
        """The positions a checkpoint of `partition` names."""
        return {topic: offset for (topic, part), offset in self.positions.items() if part == partition}

    async def ensure_current(self, timeout: float = 120.0) -> dict[int, Heal]:
        """Rebuilds (in a thread: kafka-python blocks) when the owned partitions changed; returns what must
        be written to the ledger before the next message is handled."""
        if not self.stale:
            return {}
        heal = await asyncio.to_thread(self.rebuild, timeout)
        self.stale = False
        return heal

    def rebuild(self, timeout: float = 120.0) -> dict[int, Heal]:
        """Clears the state and reads the owned partitions back."""
        started = time.monotonic()
        deadline = started + timeout
        self._forget()
        self.positions.clear()
        heals: dict[int, Heal] = {}
        facts = tail = foreign = 0
        for partition in sorted(self.owned):
            read, heal = self._rebuild_partition(partition, deadline)
            facts, tail, foreign = facts + read[0], tail + read[1], foreign + read[2]
            if heal.facts:
                heals[partition] = heal
        logger.info(
            "ledger: %s partitions %s: %d facts, %d outputs after the last checkpoint, %d foreign records, "
            "in %.2f s",
            self.stage,
            sorted(self.owned),
            facts,
            tail,
            foreign,
            time.monotonic() - started,
        )
        return heals

    def _rebuild_partition(self, partition: int, deadline: float) -> tuple[tuple[int, int, int], Heal]:
        pending: dict[str, list[Fact]] = {}
        facts = 0
        for record in self._read(self.kafka.topic(self.spec), partition, 0, deadline):
            value = _json(record.value)
            batch = str(value.get("b"))
            if isinstance(value.get("checkpoint"), dict):
                for fact in pending.pop(batch, []):
                    self._fold_fact(fact)
                    facts += 1
                for topic, offset in value["checkpoint"].items():
                    self.positions[(topic, partition)] = int(offset)
            elif isinstance(value.get("fact"), dict):
                pending.setdefault(batch, []).append(value["fact"])
        dropped = sum(len(batch) for batch in pending.values())
        if dropped:
            logger.info(
                "ledger: %s[%d]: %d facts of a batch cut short dropped", self.stage, partition, dropped
            )
        heal = Heal()
        tail = foreign = 0
        for spec in self.outputs:
            name = self.kafka.topic(spec)
            start = self.positions.get((name, partition), 0)
            if spec in self._foreign:
                for record in self._read(name, partition, 0, deadline, stop=start):
                    if _stage_of(record) != self.stage:
                        self._fold_output(spec, record.value)
                        foreign += 1
            end = start
            for record in self._read(name, partition, start, deadline):
                learned = self._fold_output(spec, record.value)
                if learned is not None:
                    heal.facts.append(learned)
                end = record.offset + 1
                tail += 1
            self.positions[(name, partition)] = end
        heal.positions = self.checkpoint(partition)
        return (facts, tail, foreign), heal

    def _read(
        self, topic: str, partition: int, start: int, deadline: float, stop: int | None = None
    ) -> Iterator[Any]:
        """The records of one partition from `start` to its end now (or to `stop`), oldest first."""
        consumer = self._client()
        tp = TopicPartition(topic, partition)
        end = consumer.end_offsets([tp])[tp] if stop is None else stop
        if start >= end:
            return
        consumer.assign([tp])
        consumer.seek(tp, start)
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise LedgerError(f"reading {topic}[{partition}] to offset {end} took too long")
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.offset >= end:
                        return
                    if record.value is not None:
                        yield record

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.kafka.bootstrap_servers,
                group_id=None,
                enable_auto_commit=False,
                max_partition_fetch_bytes=self.kafka.max_message_bytes,
            )
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        logger.warning("ledger: a record that is not JSON was skipped")
        return {}
    return value if isinstance(value, dict) else {}


def _stage_of(record: Any) -> str | None:
    for name, value in record.headers or ():
        if name == STAGE_HEADER:
            return bytes(value).decode("utf-8", "replace")
    return None


def field_of(data: bytes, name: str) -> str | None:
    """A top-level field of an event's JSON (e.g. `event_id`), or None when the bytes have none."""
    value = _json(data)
    return str(value[name]) if value.get(name) is not None else None
