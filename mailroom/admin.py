"""I/O edge for operators: creates the pipeline's topics and rewinds workers for a replay."""

from __future__ import annotations

import logging

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic, OffsetSpec
from kafka.errors import TopicAlreadyExistsError

from runtime.settings import KafkaSettings
from schemas import topics

__all__ = ["STREAM_WORKERS", "create_topics", "rewind_workers"]

logger = logging.getLogger(__name__)

STREAM_WORKERS = {
    "matcher": (topics.LETTERS_RECEIVED,),
    "converter": (topics.LETTERS_THREADED,),
    "responder": (topics.REPLIES_REQUESTED,),
}
"""The topics each stream worker reads."""


def _admin(kafka: KafkaSettings) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, client_id="mailroom-admin")


def create_topics(kafka: KafkaSettings) -> list[str]:
    """Creates every pipeline topic that does not exist yet; returns the names it created."""
    admin = _admin(kafka)
    created = []
    try:
        existing = set(admin.list_topics())
        for spec in topics.ALL_TOPICS:
            name = kafka.topic(spec)
            if name in existing:
                continue
            config = {"max.message.bytes": str(kafka.max_message_bytes)}
            if spec.compacted:
                config["cleanup.policy"] = "compact"
            if spec.kept_forever:
                config["retention.ms"] = "-1"
            try:
                admin.create_topics([NewTopic(name, kafka.partitions, 1, topic_configs=config)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    return created


def rewind_workers(kafka: KafkaSettings, workers: list[str]) -> dict[str, int]:
    """Moves the named workers' consumer groups back to the start of their input topics.

    The workers must be stopped. Their ledgers (what was already sent or created) stay, so a replay
    re-derives every event but sends no second reply and creates no second record.
    """
    admin = _admin(kafka)
    rewound = {}
    try:
        described = {t["name"]: t for t in admin.describe_topics([kafka.topic(s) for s in topics.ALL_TOPICS])}
        for worker in workers:
            specs: dict[TopicPartition, OffsetSpec] = {}
            for spec in STREAM_WORKERS[worker]:
                name = kafka.topic(spec)
                for part in described[name]["partitions"]:
                    specs[TopicPartition(name, part["partition_index"])] = OffsetSpec.EARLIEST
            result = admin.reset_group_offsets(kafka.group(worker), specs)
            errors = {
                tp: r["error"] for tp, r in result.items() if r["error"] is not None and r["error"].errno
            }
            if errors:
                raise RuntimeError(f"could not rewind {kafka.group(worker)}: {errors}")
            rewound[worker] = len(specs)
    finally:
        admin.close()
    return rewound
