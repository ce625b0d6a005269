"""I/O: a whole topic as it is now, read from its start outside any consumer group (kafka-python).

For what reads a topic once and stops: ingest's checkpoints at start, the operators' commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from runtime.settings import KafkaSettings
from schemas.topics import TopicSpec

__all__ = ["read_record", "read_to_end", "read_topic", "read_topics"]


def read_to_end(
    consumer: KafkaConsumer, tps: list[TopicPartition], timeout: float, what: str
) -> Iterator[Any]:
    """Every record (tombstones too) of the consumer's assigned partitions `tps`, from where each stands up
    to the end it has when called; TimeoutError when that takes longer than `timeout` seconds."""
    if not tps:
        return
    ends = consumer.end_offsets(tps)
    deadline = time.monotonic() + timeout
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {what} took over {timeout:.0f} s")
        for records in consumer.poll(timeout_ms=200).values():
            yield from records


def _consumer(kafka: KafkaSettings, timeout: float) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        bootstrap_timeout_ms=int(min(timeout, 30.0) * 1000),
    )


def read_topic(
    kafka: KafkaSettings, spec: TopicSpec, timeout: float = 60.0, *, tombstones: bool = False
) -> Iterator[Any]:
    """Every record with a value of `spec`, up to the end it has when called, oldest first within a
    partition; TimeoutError when that takes longer than `timeout` seconds (a KafkaError when no broker
    answers within it, or 30 s). `tombstones`: also the records without a value, which delete their
    key from a compacted topic."""
    return read_topics(kafka, [spec], timeout, tombstones=tombstones)


def read_topics(
    kafka: KafkaSettings,
    specs: Sequence[TopicSpec],
    timeout: float = 60.0,
    *,
    tombstones: bool = False,
    total: Callable[[int], None] | None = None,
) -> Iterator[Any]:
    """`read_topic` of several topics with one consumer, each partition oldest first. `total` is told,
    before the first record, how many records (tombstones too) lie ahead."""
    consumer = _consumer(kafka, timeout)
    try:
        names = [kafka.topic(spec) for spec in specs]
        tps = [TopicPartition(n, p) for n in names for p in sorted(consumer.partitions_for_topic(n) or set())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        if total is not None and tps:
            starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
            total(sum(ends[tp] - starts[tp] for tp in tps))
        what = ", ".join(names)
        yield from (r for r in read_to_end(consumer, tps, timeout, what) if tombstones or r.value is not None)
    finally:
        consumer.close()


def read_record(
    kafka: KafkaSettings, topic: str, partition: int, offset: int, timeout: float = 30.0
) -> Any | None:
    """The record at `topic`[`partition`]@`offset`, or None when the topic no longer (or not yet) holds it."""
    consumer = _consumer(kafka, timeout)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        if not consumer.beginning_offsets([tp])[tp] <= offset < consumer.end_offsets([tp])[tp]:
            return None
        consumer.seek(tp, offset)
        for record in read_to_end(consumer, [tp], timeout, f"{topic}[{partition}]"):
            return record if record.offset == offset else None
        return None
    finally:
        consumer.close()
