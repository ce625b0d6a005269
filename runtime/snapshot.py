"""I/O: a whole topic as it is now, read from its start outside any consumer group (kafka-python).

For what reads a topic once and stops: ingest's checkpoints at start, the operators' commands.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from runtime.settings import KafkaSettings
from schemas.topics import TopicSpec

__all__ = ["read_topic"]


def read_topic(
    kafka: KafkaSettings, spec: TopicSpec, timeout: float = 60.0, *, tombstones: bool = False
) -> Iterator[Any]:
    """Every record with a value of `spec`, up to the end it has when called, oldest first within a
    partition; TimeoutError when that takes longer than `timeout` seconds (a KafkaError when no broker
    answers within it, or 30 s). `tombstones`: also the records without a value, which delete their
    key from a compacted topic."""
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        bootstrap_timeout_ms=int(min(timeout, 30.0) * 1000),
    )
    try:
        name = kafka.topic(spec)
        tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or set())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {name} took over {timeout:.0f} s")
            for records in consumer.poll(timeout_ms=200).values():
                yield from (r for r in records if tombstones or r.value is not None)
    finally:
        consumer.close()
