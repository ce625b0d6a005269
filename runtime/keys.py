"""Which partition a key falls into: the rule Kafka's producers use (murmur2 of the key's bytes), so a
process that owns partitions knows which mailboxes are its own without reading a record."""

from __future__ import annotations

from kafka.partitioner import murmur2

__all__ = ["partition_of"]


def partition_of(key: str, partitions: int) -> int:
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions
