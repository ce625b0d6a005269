"""Process settings from the environment (MAILROOM_*), shared by every worker. Secrets never logged."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import TopicSpec

__all__ = ["KafkaSettings", "WorkerSettings"]


class KafkaSettings(BaseSettings):
    """The broker: MAILROOM_KAFKA_BOOTSTRAP_SERVERS, _PARTITIONS, _NAMESPACE, _SESSION_TIMEOUT_SECONDS,
    _MAX_MESSAGE_BYTES, _BATCH_RECORDS."""

    model_config = SettingsConfigDict(env_prefix="MAILROOM_KAFKA_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = Field(4, ge=1)
    """Every pipeline topic gets this many partitions when `mailroom topics` creates it."""
    session_timeout_seconds: float = Field(30.0, ge=6.0)
    """How long the group waits for a worker that stopped answering (crashed) before its partitions go
    to another: the longest a partition stalls after a crash. Kafka's minimum is 6 s."""
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024)
    """The largest event any worker publishes or reads, and the topics' `max.message.bytes`: one limit
    for the whole pipeline, so what ingest publishes the stream workers can read and pass on."""
    batch_records: int = Field(500, ge=1, le=10_000)
    """The most messages a stream worker takes at once; their outputs are in flight together and their
    offsets committed together once all are acknowledged. Smaller batches redo less after a crash."""
    namespace: str = Field("", pattern=r"^[A-Za-z0-9_-]*$")
    """Prefixes every topic and consumer group, so that several pipelines (staging and production, or
    tests) can share one cluster."""

    def topic(self, spec: TopicSpec) -> str:
        return f"{self.namespace}.{spec.name}" if self.namespace else spec.name

    def group(self, worker: str) -> str:
        """The consumer group of a worker."""
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
