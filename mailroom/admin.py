"""I/O edge for operators: creates the pipeline's topics and rewinds workers for a replay."""

from __future__ import annotations

import logging

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic, OffsetSpec
from kafka.errors import TopicAlreadyExistsError

from schemas import topics

__all__ = ["STREAM_WORKERS", "create_topics", "rewind_workers"]

logger = logging.getLogger(__name__)

STREAM_WORKERS = {
    "matcher": (topics.LETTERS_RECEIVED,),
    "converter": (topics.LETTERS_THREADED,),
    "responder": (topics.REPLIES_REQUESTED,),
}
"""Each stream worker's consumer group (`mailroom-<worker>`) and the topics it reads."""


def create_topics(bootstrap_servers: str, partitions: int) -> list[str]:
    """Creates every pipeline topic that does not exist yet; returns the names it created."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="mailroom-admin")
    created = []
    try:
        existing = set(admin.list_topics())
        for spec in topics.ALL_TOPICS:
            if spec.name in existing:
                continue
            config = {"cleanup.policy": "compact"} if spec.compacted else {}
            config["max.message.bytes"] = str(16 * 1024 * 1024)
            try:
                admin.create_topics([NewTopic(spec.name, partitions, 1, topic_configs=config)])
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    return created


def rewind_workers(bootstrap_servers: str, workers: list[str]) -> dict[str, int]:
    """Moves the named workers' consumer groups back to the start of their input topics.

    The workers must be stopped. Their tables (what was already sent or created) stay, so a replay
    re-derives every event but sends no second reply and creates no second record.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="mailroom-admin")
    rewound = {}
    try:
        described = {t["name"]: t for t in admin.describe_topics([s.name for s in topics.ALL_TOPICS])}
        for worker in workers:
            specs: dict[TopicPartition, OffsetSpec] = {}
            for spec in STREAM_WORKERS[worker]:
                for part in described[spec.name]["partitions"]:
                    specs[TopicPartition(spec.name, part["partition_index"])] = OffsetSpec.EARLIEST
            result = admin.reset_group_offsets(f"mailroom-{worker}", specs)
            errors = {tp: r["error"] for tp, r in result.items() if r["error"] is not None and r["error"].errno}
            if errors:
                raise RuntimeError(f"could not rewind mailroom-{worker}: {errors}")
            rewound[worker] = len(specs)
    finally:
        admin.close()
    return rewound
