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
too (`foreign`: employees' replies on the requests topic) is also read from where the last rebuild left
it, skipping this worker's own records; what others wrote becomes facts as well.
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

_SEEN = "#seen"
"""Suffix of a foreign topic's position in a checkpoint: how far others' records have been read."""

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
        """Clears the state and reads the owned partitions back (each topic's partitions together)."""
        started = time.monotonic()
        deadline = started + timeout
        self._forget()
        self.positions.clear()
        owned = sorted(self.owned)
        names = [self.kafka.topic(spec) for spec in (self.spec, *self.outputs)]
        # One request for every end (each takes a round trip of the client's own pace).
        ends = (
            self._client().end_offsets([TopicPartition(n, p) for n in names for p in owned]) if owned else {}
        )
        pending: dict[tuple[int, str], list[Fact]] = {}
        facts = tail = foreign = 0
        for record in self._read(self.kafka.topic(self.spec), dict.fromkeys(owned, 0), deadline, ends):
            value = _json(record.value)
            batch = (record.partition, str(value.get("b")))
            if isinstance(value.get("checkpoint"), dict):
                for fact in pending.pop(batch, []):
                    self._fold_fact(fact)
                    facts += 1
                for topic, offset in value["checkpoint"].items():
                    self.positions[(topic, record.partition)] = int(offset)
            elif isinstance(value.get("fact"), dict):
                pending.setdefault(batch, []).append(value["fact"])
        if pending:
            dropped = sum(len(batch) for batch in pending.values())
            logger.info("ledger: %s: %d facts of batches cut short dropped", self.stage, dropped)
        heals = {partition: Heal() for partition in owned}
        for spec in self.outputs:
            name = self.kafka.topic(spec)
            starts = {partition: self.positions.get((name, partition), 0) for partition in owned}
            seen = f"{name}{_SEEN}"
            if spec in self._foreign:
                # Others' records before the tail that no rebuild has read yet: their facts are written
                # with the tail's, so each is read once.
                froms = {p: min(self.positions.get((seen, p), 0), starts[p]) for p in owned}
                stops = {TopicPartition(name, p): start for p, start in starts.items()}
                for record in self._read(name, froms, deadline, stops):
                    if _stage_of(record) != self.stage:
                        learned = self._fold_output(spec, record.value)
                        if learned is not None:
                            heals[record.partition].facts.append(learned)
                        foreign += 1
            for partition, start in starts.items():
                self.positions[(name, partition)] = start
            for record in self._read(name, starts, deadline, ends):
                learned = self._fold_output(spec, record.value)
                if learned is not None:
                    heals[record.partition].facts.append(learned)
                self.positions[(name, record.partition)] = record.offset + 1
                tail += 1
            if spec in self._foreign:
                for partition in owned:
                    self.positions[(seen, partition)] = self.positions[(name, partition)]
        self._client().assign([])
        for partition, heal in heals.items():
            heal.positions = self.checkpoint(partition)
        logger.info(
            "ledger: %s partitions %s: %d facts, %d outputs after the last checkpoint, %d foreign records, "
            "in %.2f s",
            self.stage,
            owned,
            facts,
            tail,
            foreign,
            time.monotonic() - started,
        )
        return {partition: heal for partition, heal in heals.items() if heal.facts}

    def _read(
        self, topic: str, starts: dict[int, int], deadline: float, stops: dict[TopicPartition, int]
    ) -> Iterator[Any]:
        """The records of the given partitions of `topic`, each from its start up to its stop, oldest
        first within a partition."""
        consumer = self._client()
        tps = {partition: TopicPartition(topic, partition) for partition in starts}
        todo = {p: tps[p] for p in starts if starts[p] < stops[tps[p]]}
        if not todo:
            return
        consumer.assign(list(todo.values()))
        consumer.resume(*todo.values())  # paused when an earlier read reached its end
        for partition, tp in todo.items():
            consumer.seek(tp, starts[partition])
        while todo:
            if time.monotonic() > deadline:
                raise LedgerError(f"reading {topic} to its end took too long")
            for tp, records in consumer.poll(timeout_ms=200).items():
                if tp.partition not in todo:
                    continue
                for record in records:
                    if record.offset >= stops[tp]:
                        break
                    if record.value is not None:
                        yield record
            for partition, tp in list(todo.items()):
                if consumer.position(tp) >= stops[tp]:
                    del todo[partition]
                    consumer.pause(tp)

    def fetch(self, spec: TopicSpec, partition: int, offset: int, timeout: float = 10.0) -> bytes | None:
        """The value of one record (blocking), or None when the topic no longer holds it."""
        deadline = time.monotonic() + timeout
        tp = TopicPartition(self.kafka.topic(spec), partition)
        end = self._client().end_offsets([tp])[tp]
        if offset >= end:
            return None
        try:
            for record in self._read(tp.topic, {partition: offset}, deadline, {tp: offset + 1}):
                return bytes(record.value) if record.offset == offset else None
            return None
        finally:
            self._client().assign([])

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.kafka.bootstrap_servers,
                group_id=None,
                enable_auto_commit=False,
                # It reads what is there: a fetch the broker holds back waiting for more only delays the
                # requests queued behind it.
                fetch_max_wait_ms=20,
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
