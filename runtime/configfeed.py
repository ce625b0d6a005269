"""I/O: the configuration as every worker sees it, followed live: the configuration topic (compacted: the
latest version of each mailbox and named template) or, where the topic holds nothing yet, the YAML file.

A new version takes effect within seconds without a restart. It is taken whole or not at all: a version
that does not validate (or whose templates do not compile) is logged and the previous one stays. Records
of one `config apply` may arrive in any order across partitions: a state that does not validate yet (a
rule naming a template whose record comes next) is simply waited out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from runtime.loading import FileConfigSource
from runtime.settings import KafkaSettings
from runtime.snapshot import read_to_end, read_topic
from schemas import topics
from schemas.config import MailroomConfig
from schemas.errors import ConfigError, EventError
from schemas.events import MailboxVersion, TemplateVersion, event_type_of, parse_event

__all__ = [
    "TEMPLATE_KEY_PREFIX",
    "ConfigState",
    "LiveConfig",
    "read_state",
    "start_live",
    "template_key",
]

logger = logging.getLogger(__name__)

TEMPLATE_KEY_PREFIX = "template:"

Validate = Callable[[MailroomConfig], None]


def template_key(name: str) -> str:
    return f"{TEMPLATE_KEY_PREFIX}{name}"


@dataclass
class ConfigState:
    """The latest version of every mailbox and named template on the configuration topic."""

    mailboxes: dict[str, MailboxVersion] = field(default_factory=dict)
    templates: dict[str, TemplateVersion] = field(default_factory=dict)

    def fold(self, key: str, value: bytes | None) -> None:
        """Takes one record of the topic (None: a tombstone)."""
        if key.startswith(TEMPLATE_KEY_PREFIX):
            name = key[len(TEMPLATE_KEY_PREFIX) :]
            if value is None:
                self.templates.pop(name, None)
            else:
                self.templates[name] = parse_event(TemplateVersion, value)
        elif value is None:
            self.mailboxes.pop(key, None)
        else:
            self.mailboxes[key] = parse_event(MailboxVersion, value)

    def empty(self) -> bool:
        return not self.mailboxes and not self.templates

    def config(self) -> MailroomConfig:
        """The configuration these versions make; ConfigError when they do not fit together."""
        try:
            return MailroomConfig(
                templates={name: v.template for name, v in sorted(self.templates.items())},
                mailboxes=tuple(v.mailbox for _, v in sorted(self.mailboxes.items())),
            )
        except ValidationError as exc:
            raise ConfigError(
                f"the configuration topic does not validate: {exc.errors()[0]['msg']}"
            ) from None

    def versions(self) -> dict[str, int]:
        return {box_id: v.version for box_id, v in self.mailboxes.items()}

    def added(self) -> dict[str, datetime]:
        """When each mailbox's first version was published: where reading its folders starts."""
        return {box_id: v.created_at for box_id, v in self.mailboxes.items()}


def follower(
    kafka: KafkaSettings, client_id: str = "mailroom-config"
) -> tuple[KafkaConsumer, list[TopicPartition]]:
    """A consumer of the configuration topic outside any group: every partition, from its start."""
    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        client_id=client_id,
        max_partition_fetch_bytes=kafka.max_message_bytes,
        fetch_max_bytes=max(kafka.max_message_bytes, 50 * 1024 * 1024),
    )
    name = kafka.topic(topics.CONFIG)
    parts = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    return consumer, parts


def fold_records(state: ConfigState, records: Iterable[Any]) -> int:
    """Folds configuration records into `state`; one that cannot be read is logged and skipped. Returns
    how many were folded."""
    folded = 0
    for record in records:
        key = record.key.decode() if record.key is not None else ""
        try:
            state.fold(key, record.value)
            folded += 1
        except EventError as exc:  # not ours to fix here: `config apply` writes only valid versions
            kind = event_type_of(record.value) if record.value else None
            logger.error("configuration record %s (%s) skipped: %s", key, kind, exc)
    return folded


def read_state(kafka: KafkaSettings, timeout: float = 60.0) -> ConfigState:
    """The configuration topic as it is now (empty when the topic does not exist)."""
    state = ConfigState()
    fold_records(state, read_topic(kafka, topics.CONFIG, timeout, tombstones=True))
    return state


class LiveConfig:
    """The configuration as it is now, replaced whole when a new version arrives; safe to read from any
    thread (`config` is one reference)."""

    def __init__(
        self,
        config: MailroomConfig,
        versions: dict[str, int] | None = None,
        source: str = "fixed",
        added: dict[str, datetime] | None = None,
    ):
        self._config = config
        self._versions = dict(versions or {})
        self._added = dict(added or {})
        self.source = source
        """`topic`, `file`, or `fixed` (never changes: tests, one-off commands)."""
        self._listeners: list[Callable[[MailroomConfig], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> MailroomConfig:
        return self._config

    @property
    def versions(self) -> dict[str, int]:
        return self._versions

    @property
    def stopping(self) -> threading.Event:
        """Set by `close`: the follower ends."""
        return self._stop

    def version_of(self, mailbox_id: str) -> int | None:
        """The version of the mailbox's configuration in force (None: not from the topic)."""
        return self._versions.get(mailbox_id)

    def added_at(self, mailbox_id: str) -> datetime | None:
        """When the mailbox was added to the configuration topic (None: not known)."""
        return self._added.get(mailbox_id)

    def on_change(self, listener: Callable[[MailroomConfig], None]) -> None:
        """Calls `listener(new)` (on the follower's thread) after each change."""
        self._listeners.append(listener)

    def replace(
        self,
        config: MailroomConfig,
        versions: dict[str, int] | None = None,
        added: dict[str, datetime] | None = None,
    ) -> None:
        self._added = dict(added or {})
        self._versions = dict(versions or {})
        self._config = config
        for listener in self._listeners:
            try:
                listener(config)
            except Exception:
                logger.exception("configuration: a listener failed on the new version")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def follow(self, target: Callable[[], None]) -> None:
        """Runs the follower `target` on a thread of its own until `close`."""
        self._thread = threading.Thread(target=target, name=f"configuration ({self.source})", daemon=True)
        self._thread.start()


def _take(
    live: LiveConfig,
    config: MailroomConfig,
    versions: dict[str, int],
    validate: Validate,
    added: dict[str, datetime] | None = None,
) -> bool:
    try:
        validate(config)
    except ConfigError as exc:
        logger.error("configuration: the new version is not taken (the previous one stays): %s", exc)
        return False
    changed = config != live.config or versions != live.versions
    if changed:
        logger.info(
            "configuration: new version from the %s: %d mailboxes", live.source, len(config.mailboxes)
        )
        live.replace(config, versions, added)
    return changed


def start_live(
    kafka: KafkaSettings, path: Path, validate: Validate, reload_seconds: float = 2.0, source: str = "auto"
) -> LiveConfig:
    """The configuration topic when it holds anything (`source` auto; always with topic), followed live;
    else the file, followed as it changes (always with `source` file). ConfigError when that gives no
    valid configuration."""
    if source == "file":
        return _from_file(path, validate, reload_seconds)
    consumer, parts = follower(kafka)
    state = ConfigState()
    try:
        fold_records(state, read_to_end(consumer, parts, 60.0, kafka.topic(topics.CONFIG)))
    except BaseException:
        consumer.close()
        raise
    if not state.empty():
        config = state.config()
        validate(config)
        live = LiveConfig(config, state.versions(), "topic", state.added())
        logger.info("configuration: from the topic, %d mailboxes", len(config.mailboxes))

        def follow_topic() -> None:
            pending = False
            try:
                while not live.stopping.is_set():
                    batches = consumer.poll(timeout_ms=500)
                    for records in batches.values():
                        pending |= fold_records(state, records) > 0
                    if pending and not batches:  # a quiet moment: the records of one apply are all here
                        pending = False
                        try:
                            _take(live, state.config(), state.versions(), validate, state.added())
                        except ConfigError as exc:
                            logger.warning("configuration: %s; waiting for more records", exc)
            except Exception:
                logger.exception("configuration: following the topic stopped")
            finally:
                consumer.close()

        live.follow(follow_topic)
        return live
    consumer.close()
    if source == "topic":
        raise ConfigError(
            f"the configuration topic {kafka.topic(topics.CONFIG)} is empty: publish a configuration with "
            "`mailroom config apply -f FILE`"
        )
    return _from_file(path, validate, reload_seconds)


def _from_file(path: Path, validate: Validate, reload_seconds: float) -> LiveConfig:
    source = FileConfigSource(path)
    config = source.load()
    validate(config)
    live = LiveConfig(config, None, "file")
    logger.info(
        "configuration: from %s (the configuration topic is empty), %d mailboxes", path, len(config.mailboxes)
    )

    def follow_file() -> None:
        while not live.stopping.wait(reload_seconds):
            try:
                new = source.changed()
            except ConfigError as exc:
                logger.error("configuration: %s: the changed file is not taken: %s", path, exc)
                continue
            if new is not None:
                _take(live, new, {}, validate)

    live.follow(follow_file)
    return live
