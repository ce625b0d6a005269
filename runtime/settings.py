"""Process settings from the environment (MAILROOM_*), shared by every worker. Secrets never logged."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import TopicSpec

__all__ = ["IngestSettings", "KafkaSettings", "WorkerSettings"]


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


class IngestSettings(BaseSettings):
    """How ingest watches mailboxes: MAILROOM_INGEST_IMAP_TIMEOUT_SECONDS, _IDLE_SECONDS,
    _BACKOFF_FIRST_SECONDS, _BACKOFF_MAX_SECONDS, _FAILING_AFTER_SECONDS, _FAILING_RETRY_SECONDS,
    _RELOAD_SECONDS."""

    model_config = SettingsConfigDict(env_prefix="MAILROOM_INGEST_", frozen=True)

    imap_timeout_seconds: float = Field(30.0, gt=0)
    """The longest one IMAP step may take before the connection counts as broken (a hung server)."""
    idle_seconds: float = Field(600.0, gt=0, le=1740)
    """IDLE is ended and the folder looked at afresh after this long (servers drop IDLE after 29 min)."""
    backoff_first_seconds: float = Field(1.0, gt=0)
    """The first wait before reconnecting after a fault; it doubles with each failed try (with jitter)."""
    backoff_max_seconds: float = Field(300.0, gt=0)
    failing_after_seconds: float = Field(300.0, ge=0)
    """A mailbox that cannot be read for this long is shown failing, not retrying (it is still retried)."""
    failing_retry_seconds: float = Field(900.0, gt=0)
    """How often a mailbox whose login was refused is tried again; changed settings try it at once."""
    reload_seconds: float = Field(2.0, gt=0)
    """How often the configuration file is looked at for changes (mailboxes added, changed, removed)."""


class WorkerSettings(BaseSettings):
    """MAILROOM_CONFIG (the YAML file), MAILROOM_CONFIG_SOURCE, MAILROOM_DATA_DIR, MAILROOM_LOG_LEVEL,
    MAILROOM_LOG_FORMAT, MAILROOM_POLL_SECONDS."""

    model_config = SettingsConfigDict(env_prefix="MAILROOM_", frozen=True)

    config: Path = Path("mailroom.yaml")
    config_source: Literal["auto", "topic", "file"] = "auto"
    """Where workers and commands take the configuration from: the configuration topic (`topic`), the
    file (`file`), or the topic when it holds any record and the file otherwise (`auto`)."""
    data_dir: Path = Path(".mailroom")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    """`json`: one JSON object a line, with the topic, partition, offset, mailbox and Message-ID of the
    message under way (runtime/logs.py)."""
    poll_seconds: float = Field(5.0, gt=0)
    """How often ingest looks at a folder whose server offers no IDLE (or that turned IDLE off)."""
    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings())
    ingest: IngestSettings = Field(default_factory=lambda: IngestSettings())
