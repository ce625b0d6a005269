"""Integration: the one stream loop (runtime/stream.py) against a real Kafka broker, run in process."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from deploy.local.pipeline import TopicReader, wait_until
from mailroom.admin import create_topics
from runtime.policy import Source
from runtime.settings import KafkaSettings
from runtime.stream import Emitter, StreamWorker
from schemas import topics
from schemas.errors import MailroomError
from schemas.events import DeadLetter, IngestCheckpoint, parse_event, utcnow

pytestmark = pytest.mark.integration

SOURCE, TARGET = topics.LETTERS_RECEIVED, topics.LETTERS_DECIDED


class Broken(MailroomError):
    """A message no retry can fix."""


def _event(n: int) -> IngestCheckpoint:
    """Any small event will do as the messages' payload: a checkpoint numbered `n`."""
    return IngestCheckpoint(
        event_id=f"e{n}",
        occurred_at=utcnow(),
        mailbox_id=f"box{n % 3}",
        folder="INBOX",
        uidvalidity=1,
        last_uid=n,
    )


def _kafka(servers: str) -> KafkaSettings:
    kafka = KafkaSettings(
        bootstrap_servers=servers,
        partitions=2,
        namespace=f"st{secrets.token_hex(4)}",
        batch_records=50,
        session_timeout_seconds=6,
    )
    create_topics(kafka)
    return kafka


def _produce(kafka: KafkaSettings, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for n, value in enumerate(values):
        producer.send(kafka.topic(SOURCE), key=f"box{n % 3}".encode(), value=value)
    producer.flush()
    producer.close()


def _committed(kafka: KafkaSettings, stage: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets({kafka.group(stage): None}).get(kafka.group(stage), {})
    except KafkaError:  # no group coordinator yet: the group has not committed anything
        return 0
    finally:
        admin.close()
    return sum(
        max(getattr(o, "offset", 0), 0) for tp, o in offsets.items() if tp.topic == kafka.topic(SOURCE)
    )


def _run_until(worker: StreamWorker, done: Callable[[], bool]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            while not done():
                if task.done():
                    task.result()
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)

    asyncio.run(asyncio.wait_for(main(), 120))


def _echo(
    calls: list[int], fail: frozenset[int] = frozenset()
) -> Callable[[Source, Emitter], Awaitable[None]]:
    """A handler that records each message's number and emits two outputs for it (fails on `fail`)."""

    async def handle(source: Source, out: Emitter) -> None:
        event = parse_event(IngestCheckpoint, source.value)
        calls.append(event.last_uid)
        if event.last_uid in fail:
            raise Broken(f"message {event.last_uid} is broken")
        out.emit(TARGET, event.mailbox_id, event.model_copy(update={"event_id": f"out-{event.last_uid}"}))
        out.emit(TARGET, event.mailbox_id, event.model_copy(update={"event_id": f"out2-{event.last_uid}"}))

    return handle


@pytest.mark.parametrize("concurrency", [1, 8])
def test_every_output_is_published_and_the_offsets_committed_after_them(
    kafka_servers: str, concurrency: int
) -> None:
    kafka = _kafka(kafka_servers)
    _produce(kafka, [_event(n).to_bytes() for n in range(300)])
    calls: list[int] = []
    worker = StreamWorker("streamtest", kafka, SOURCE, _echo(calls), concurrency=concurrency)
    reader = TopicReader(kafka)
    try:
        _run_until(worker, lambda: _committed(kafka, "streamtest") >= 300)

        outputs = [parse_event(IngestCheckpoint, r.value).event_id for r in reader.records(TARGET)]
    finally:
        reader.close()
    assert sorted(calls) == list(range(300))
    assert sorted(outputs) == sorted([f"out-{n}" for n in range(300)] + [f"out2-{n}" for n in range(300)])


def test_a_message_that_fails_for_good_is_dead_lettered_with_its_bytes_and_the_rest_flow(
    kafka_servers: str,
) -> None:
    kafka = _kafka(kafka_servers)
    values = [_event(n).to_bytes() for n in range(20)]
    values[7] = b"not an event at all"
    _produce(kafka, values)
    calls: list[int] = []
    worker = StreamWorker("streamtest", kafka, SOURCE, _echo(calls, fail=frozenset({12})))
    reader = TopicReader(kafka)
    try:
        _run_until(worker, lambda: _committed(kafka, "streamtest") >= 20)

        dead = [parse_event(DeadLetter, r.value) for r in reader.records(topics.DEAD_LETTERS)]
        outputs = {parse_event(IngestCheckpoint, r.value).event_id for r in reader.records(TARGET)}
    finally:
        reader.close()
    assert sorted((d.error_type, d.original) for d in dead) == sorted(
        [("EventError", b"not an event at all"), ("Broken", values[12])]
    )
    assert all(d.stage == "streamtest" and d.source_topic == kafka.topic(SOURCE) for d in dead)
    assert outputs == {f"{p}-{n}" for n in range(20) if n not in (7, 12) for p in ("out", "out2")}


def test_a_restarted_worker_goes_on_from_the_commit(kafka_servers: str) -> None:
    kafka = _kafka(kafka_servers)
    _produce(kafka, [_event(n).to_bytes() for n in range(40)])
    first: list[int] = []
    _run_until(StreamWorker("streamtest", kafka, SOURCE, _echo(first)), lambda: len(first) >= 40)
    _produce(kafka, [_event(n).to_bytes() for n in range(40, 60)])
    second: list[int] = []
    wait_until("the first worker's commit", lambda: _committed(kafka, "streamtest") >= 40, 30)

    _run_until(StreamWorker("streamtest", kafka, SOURCE, _echo(second)), lambda: len(second) >= 20)

    assert sorted(first) == list(range(40))
    assert sorted(second) == list(range(40, 60))


def test_outputs_keep_the_order_of_their_messages_per_key(kafka_servers: str) -> None:
    kafka = _kafka(kafka_servers)
    _produce(kafka, [_event(n).to_bytes() for n in range(120)])
    worker = StreamWorker("streamtest", kafka, SOURCE, _echo([]))
    reader = TopicReader(kafka)
    try:
        _run_until(worker, lambda: _committed(kafka, "streamtest") >= 120)
        by_key: dict[str, list[int]] = {}
        for record in reader.records(TARGET):
            event = parse_event(IngestCheckpoint, record.value)
            if event.event_id.startswith("out-"):
                by_key.setdefault(event.mailbox_id, []).append(event.last_uid)
    finally:
        reader.close()
    assert by_key and all(uids == sorted(uids) for uids in by_key.values())
    assert sum(len(uids) for uids in by_key.values()) == 120
