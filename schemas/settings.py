"""Process settings from the environment (MAILROOM_*), shared by every worker. Secrets never logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import TopicSpec

__all__ = ["KafkaSettings", "WorkerSettings", "faust_app_options"]


class KafkaSettings(BaseSettings):
    """The broker: MAILROOM_KAFKA_BOOTSTRAP_SERVERS, _PARTITIONS, _NAMESPACE, _SESSION_TIMEOUT_SECONDS."""

    model_config = SettingsConfigDict(env_prefix="MAILROOM_KAFKA_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = Field(4, ge=1)
    """Every pipeline topic has this many partitions; faust tables need them to line up."""
    session_timeout_seconds: float = Field(30.0, ge=6.0)
    """How long the group waits for a worker that stopped answering (crashed) before its partitions go
    to another: the longest a partition stalls after a crash. Kafka's minimum is 6 s."""
    namespace: str = Field("", pattern=r"^[A-Za-z0-9_-]*$")
    """Prefixes every topic and consumer group, so that several pipelines (staging and production, or
    tests) can share one cluster."""

    def topic(self, spec: TopicSpec) -> str:
        return f"{self.namespace}.{spec.name}" if self.namespace else spec.name

    def group(self, worker: str) -> str:
        """The consumer group (and faust app id) of a worker."""
        return f"{self.namespace}.mailroom-{worker}" if self.namespace else f"mailroom-{worker}"


class WorkerSettings(BaseSettings):
    """MAILROOM_CONFIG (the YAML file), MAILROOM_DATA_DIR, MAILROOM_LOG_LEVEL, MAILROOM_POLL_SECONDS."""

    model_config = SettingsConfigDict(env_prefix="MAILROOM_", frozen=True)

    config: Path = Path("mailroom.yaml")
    data_dir: Path = Path(".mailroom")
    log_level: str = "INFO"
    poll_seconds: float = Field(5.0, gt=0)
    """How often ingest looks for new letters."""
    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings())


def faust_app_options(worker: str, settings: WorkerSettings) -> dict[str, Any]:
    """The faust.App options every stream worker shares: at-least-once, no web server, memory tables.

    Tables are restored from their changelog topics at start. The app id (and so the consumer group and
    the changelog names) is fixed per worker: an auditor's replay resets the group's offsets, and the
    tables that remember what was already done stay.
    """
    return {
        "id": settings.kafka.group(worker),
        "broker": f"kafka://{settings.kafka.bootstrap_servers}",
        "processing_guarantee": "at_least_once",
        "topic_partitions": settings.kafka.partitions,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": settings.kafka.session_timeout_seconds,
        "broker_heartbeat_interval": max(1.0, settings.kafka.session_timeout_seconds / 10),
        "store": "memory://",
        "web_enabled": False,
        "datadir": str(settings.data_dir / worker),
        "value_serializer": "raw",
        "key_serializer": "raw",
    }
