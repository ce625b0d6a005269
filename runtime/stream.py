"""I/O: the one stream loop every stream worker runs (matcher, converter, responder), on aiokafka.

For each batch the consumer gives: bring the worker's ledger up to date (after it got partitions), handle
each message under the error policy, send every output without waiting for each acknowledgement in turn,
wait for them all, close the batch in the ledger with a checkpoint, then commit the batch's offsets. So a
message's offset is committed only after all its outputs are on the broker (at least once), while many
sends are in flight together.

Every output goes to the partition its message came from (keys stay as the topics name them), so a
worker's outputs and its ledger facts for a mailbox sit in the partitions that own the mailbox's letters.

A handler emits its outputs and facts through an `Emitter`; they are sent only when it returns, so a
message that fails and is tried again, or is dead-lettered, has sent nothing half-way. A step that must
be on the broker before the next one begins (the responder's ReplySent before it files the copy) uses
`Emitter.publish`, which returns once the broker has the event.

When the broker does not take a batch's outputs, the worker forgets what it did since its last commit:
its ledger is read back again and the consumer goes back to the committed offsets, so nothing is lost
and, outputs having deterministic ids, nothing is made twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from runtime import logs, metrics
from runtime.ledger import STAGE_HEADER, Fact, Ledger, LedgerError, checkpoint_record, fact_record, new_batch
from runtime.policy import Source, process_message
from runtime.settings import KafkaSettings
from schemas import topics
from schemas.errors import ConfigError, MailroomError
from schemas.events import DeadLetter, Event, LetterReceived

__all__ = ["Emitter", "Handler", "Output", "PublishFailedError", "StreamWorker", "run_worker"]

logger = logging.getLogger(__name__)

_PRODUCER_BATCH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Output:
    """A record to publish: its topic, key, bytes (serialized when emitted, so an event that cannot be
    serialized fails its own message, not the batch), partition (None: by key) and the event it carries
    (counted in the metrics once acknowledged; None for ledger records)."""

    spec: topics.TopicSpec
    key: str
    value: bytes
    partition: int | None = None
    event: Event | None = None


class PublishFailedError(MailroomError):
    """The broker did not acknowledge an output; the message is tried again."""

    retriable = True


class Emitter:
    """What a handler publishes and remembers for the message it handles."""

    def __init__(self, worker: StreamWorker, source: Source) -> None:
        self._worker = worker
        self._partition = source.partition
        self.outputs: list[Output] = []

    def emit(self, spec: topics.TopicSpec, key: str, event: Event) -> None:
        """Queues `event` for the message's partition of `spec`; sent when the handler returns, and
        acknowledged before the commit."""
        self.outputs.append(Output(spec, key, event.to_bytes(), self._partition, event))

    def remember(self, key: str, fact: Fact) -> None:
        """Queues a fact for the worker's ledger (what a rebuild folds back)."""
        ledger = self._worker.ledger
        if ledger is None:
            raise RuntimeError(f"{self._worker.stage} has no ledger to remember in")
        value = json.dumps(fact, separators=(",", ":"), default=str).encode()
        self.outputs.append(Output(ledger.spec, key, value, self._partition))

    async def publish(self, spec: topics.TopicSpec, key: str, event: Event) -> None:
        """Sends `event` now and returns when the broker has it."""
        await self._worker.publish_now(Output(spec, key, event.to_bytes(), self._partition, event))


Handler = Callable[[Source, Emitter], Awaitable[None]]
"""Handles one consumed message; raises to hand the message to the error policy."""


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, worker: StreamWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info("%s: partitions assigned: %s", self._worker.stage, _names(assigned))
        self._worker.owned = set(assigned)
        if self._worker.ledger is not None:
            self._worker.ledger.assign([tp.partition for tp in assigned])


class StreamWorker:
    """Consumes `source` in the worker's consumer group and runs `handle` on each message.

    `concurrency`: how many messages of a batch are handled at once (1: one after the other, in order);
    a handler that allows more must be safe to run beside itself (the responder's). `letter_of` gives the
    raw letter a failed message carries, kept in its dead letter instead of the event's bytes. `on_close`
    runs when the worker stops (to close the handler's connections); `every_second` between batches, about
    once a second, once the ledger is read back (the responder's deferred replies). `health` is what
    `/healthz` and `/readyz` say (runtime/metrics.py): the loop beats it and says when it catches up."""

    def __init__(
        self,
        stage: str,
        kafka: KafkaSettings,
        source: topics.TopicSpec,
        handle: Handler,
        ledger: Ledger | None = None,
        concurrency: int = 1,
        letter_of: Callable[[Source], LetterReceived | None] | None = None,
        on_close: Callable[[], None] = lambda: None,
        every_second: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.stage = stage
        self.kafka = kafka
        self.source = source
        self.ledger = ledger
        self._handle = handle
        self._concurrency = max(1, concurrency)
        self._letter_of = letter_of
        self._on_close = on_close
        self._every_second = every_second
        self._last_tick = 0.0
        self._producer: AIOKafkaProducer | None = None
        self._batch = new_batch()
        self._headers = [(STAGE_HEADER, stage.encode())]
        self.health = metrics.Health(stage)
        self.owned: set[TopicPartition] = set()
        self._committed: dict[TopicPartition, int] = {}
        self._lagged: set[int] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Runs until `stop` is set; the batch under way is finished and committed first."""
        k = self.kafka
        self._producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap_servers,
            client_id=f"mailroom-{self.stage}",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=_PRODUCER_BATCH_BYTES,
            max_request_size=k.max_message_bytes,
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=k.bootstrap_servers,
            client_id=f"mailroom-{self.stage}",
            group_id=k.group(self.stage),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(k.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(max(1.0, k.session_timeout_seconds / 10) * 1000),
            max_partition_fetch_bytes=k.max_message_bytes,
            fetch_max_bytes=max(k.max_message_bytes, 50 * 1024 * 1024),
        )
        await self._producer.start()
        try:
            await self._check_partitions(self._producer)
            consumer.subscribe([k.topic(self.source)], listener=_Assignments(self))
            await consumer.start()
            logger.info("%s: consuming %s as %s", self.stage, k.topic(self.source), k.group(self.stage))
            await self._loop(consumer, stop)
        finally:
            await consumer.stop()
            await self._producer.stop()
            if self.ledger is not None:
                self.ledger.close()
            self._on_close()

    async def _check_partitions(self, producer: AIOKafkaProducer) -> None:
        """The input, the ledger and the outputs it reads back must have as many partitions: outputs go
        to their message's partition, and an instance reads back only the partitions it owns."""
        if self.ledger is None:
            return
        specs = (self.source, self.ledger.spec, *self.ledger.outputs)
        counts = {}
        for spec in specs:
            found = await producer.partitions_for(self.kafka.topic(spec))
            counts[self.kafka.topic(spec)] = len(found or ())
        if len(set(counts.values())) != 1:
            listed = ", ".join(f"{name}: {count}" for name, count in counts.items())
            raise ConfigError(
                f"{self.stage}: these topics must have the same number of partitions ({listed}); "
                "`mailroom topics` creates them so"
            )

    async def _loop(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            self.health.beat()
            batch: dict[TopicPartition, list[Any]] = await consumer.getmany(
                timeout_ms=500, max_records=self.kafka.batch_records
            )
            await self._tick(consumer)
            if not batch:
                continue
            try:
                await self._process(batch)
            except (PublishFailedError, LedgerError) as exc:
                logger.error("%s: %s; going back to the last commit in %.1f s", self.stage, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                await self._rewind(consumer, batch)
                continue
            backoff = 0.5
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            try:
                await consumer.commit(offsets)
                self._committed.update(offsets)
            except (CommitFailedError, KafkaError) as exc:
                # The partitions moved to another instance meanwhile: it handles them again, idempotently.
                logger.warning("%s: commit of %s failed: %s", self.stage, _names(offsets), exc)

    async def _tick(self, consumer: AIOKafkaConsumer) -> None:
        """About once a second between batches: the ledger is read back as soon as partitions come (not
        only when a message does), then the worker's periodic work runs."""
        now = asyncio.get_running_loop().time()
        if now - self._last_tick < 1.0:
            return
        self._last_tick = now
        self._note_lag(consumer)
        try:
            if self.ledger is not None and self.ledger.owned:
                await self._ledger_current()
            if self._every_second is not None:
                await self._every_second()
        except Exception:  # tried again a second later; the stream goes on meanwhile
            logger.exception("%s: periodic work failed", self.stage)

    def _note_lag(self, consumer: AIOKafkaConsumer) -> None:
        """The lag of each owned partition: its end as last fetched less what this worker committed
        (partitions that went to another instance are no longer reported here)."""
        for gone in self._lagged - {tp.partition for tp in self.owned}:
            metrics.CONSUMER_LAG.remove(self.stage, self.source.name, str(gone))
            self._lagged.discard(gone)
        for tp in self.owned:
            end = consumer.highwater(tp)
            done = self._committed.get(tp)
            if end is None or done is None:
                continue
            lag = metrics.CONSUMER_LAG.labels(self.stage, self.source.name, str(tp.partition))
            lag.set(max(end - done, 0))
            self._lagged.add(tp.partition)

    async def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        if self.ledger is not None:
            await self._ledger_current()
        self._batch = new_batch()
        pending: list[asyncio.Future[Any]] = []
        sent: list[Output] = []
        records = [record for part in batch.values() for record in part]
        if self._concurrency > 1:
            slots = asyncio.Semaphore(self._concurrency)

            async def one(record: Any) -> None:
                async with slots:
                    await self._handle_all([record], pending, sent)

            await asyncio.gather(*(one(record) for record in records))
        else:
            await self._handle_all(records, pending, sent)
        await self._acknowledged(pending)
        self._count(sent)
        if self.ledger is not None:
            await self._checkpoint({tp.partition for tp in batch})

    def _count(self, sent: Iterable[Output]) -> None:
        """Counts acknowledged outputs (ledger records are not events: not counted)."""
        for output in sent:
            if output.event is not None:
                metrics.published(self.stage, output.spec, output.key, output.event)

    async def _ledger_current(self) -> None:
        """Reads the ledger back if the owned partitions changed, then writes what the rebuild learned
        from the outputs' tails, as a batch closed by its checkpoint."""
        assert self.ledger is not None
        if not self.ledger.stale:
            return
        started = time.monotonic()
        self.health.busy(True)
        try:
            heals = await self.ledger.ensure_current()
        finally:
            self.health.busy(False)
        metrics.LEDGER_CATCHUP_SECONDS.labels(self.stage).observe(time.monotonic() - started)
        for partition, heal in heals.items():
            batch = new_batch()
            sent = [
                await self._send(Output(self.ledger.spec, "", json.dumps(fact).encode(), partition), batch)
                for fact in heal.facts
            ]
            sent.append(
                await self._send(
                    Output(self.ledger.spec, "", checkpoint_record(batch, heal.positions), partition), None
                )
            )
            await self._acknowledged(sent)

    async def _checkpoint(self, partitions: Iterable[int]) -> None:
        assert self.ledger is not None
        spec = self.ledger.spec
        sent = [
            await self._send(
                Output(spec, "", checkpoint_record(self._batch, self.ledger.checkpoint(p)), p), None
            )
            for p in partitions
        ]
        await self._acknowledged(sent)

    async def _acknowledged(self, pending: list[asyncio.Future[Any]]) -> None:
        """Waits for every send; notes each acknowledged output in the ledger."""
        results: list[Any] = await asyncio.gather(*pending, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise PublishFailedError(
                f"the broker did not take {len(failed)} of {len(results)} records: {failed[0]}"
            )
        if self.ledger is not None:
            for meta in results:
                self.ledger.note_acked(meta.topic, meta.partition, meta.offset)

    async def _handle_all(
        self, records: Iterable[Any], pending: list[asyncio.Future[Any]], sent: list[Output]
    ) -> None:
        received = metrics.MESSAGES_IN.labels(self.stage, self.source.name)
        took = metrics.PROCESSING_SECONDS.labels(self.stage)
        for record in records:
            received.inc()
            source = Source(
                self.stage, record.topic, record.partition, record.offset, record.key, record.value
            )
            started = time.perf_counter()
            with logs.context(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                mailbox=record.key.decode(errors="replace") if record.key else None,
            ):
                outputs = await self._handle_one(source)
            took.observe(time.perf_counter() - started)
            for output in outputs:
                pending.append(await self._send(output, self._batch))
            sent.extend(outputs)

    async def _handle_one(self, source: Source) -> list[Output]:
        """The outputs of one message under the error policy: its handler's, or its dead letter."""
        emitter = Emitter(self, source)

        async def handle() -> None:
            emitter.outputs.clear()  # what a failed try emitted is not sent
            await self._handle(source, emitter)

        async def publish_dead(dead: DeadLetter) -> None:
            emitter.outputs.clear()
            key = dead.mailbox_id or dead.source_key or ""
            emitter.outputs.append(Output(topics.DEAD_LETTERS, key, dead.to_bytes(), event=dead))

        def letter() -> LetterReceived | None:
            return self._letter_of(source) if self._letter_of is not None else None

        await process_message(
            source, handle, publish_dead, letter=letter, max_bytes=self.kafka.max_message_bytes
        )
        return emitter.outputs

    async def _send(self, output: Output, batch: str | None) -> asyncio.Future[Any]:
        """Hands `output` to the producer; a fact (a ledger record) is wrapped in its batch."""
        assert self._producer is not None
        value = output.value
        if batch is not None and self.ledger is not None and output.spec is self.ledger.spec:
            value = fact_record(batch, value)
        future: asyncio.Future[Any] = await self._producer.send(
            self.kafka.topic(output.spec),
            key=output.key.encode(),
            value=value,
            partition=output.partition,
            headers=self._headers,
        )
        return future

    async def publish_now(self, output: Output) -> None:
        """Sends `output` and returns when the broker has it."""
        try:
            await self._acknowledged([await self._send(output, None)])
        except KafkaError as exc:
            where = output.spec.name
            raise PublishFailedError(f"the broker did not take an event for {where}: {exc}") from exc
        self._count([output])

    async def _rewind(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Any]]) -> None:
        """Forgets what was done since the last commit: the ledger is read back again and the consumer
        goes back to the committed offsets."""
        if self.ledger is not None:
            self.ledger.rewind()
        for tp, records in batch.items():
            committed = await consumer.committed(tp)
            consumer.seek(tp, committed if committed is not None else records[0].offset)


def _names(partitions: Iterable[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(partitions)) or "none"


def run_worker(worker: StreamWorker) -> int:
    """Runs a stream worker in this process until SIGTERM or SIGINT; 2 when its topics do not fit."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.run(stop)

    try:
        asyncio.run(main())
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    logger.info("%s: stopped", worker.stage)
    return 0
