"""Entry of the ingest worker: joins the ingest group, reads the mailboxes whose partition of the
configuration topic it is assigned, follows the configuration file, until SIGTERM.

Several ingest processes share the mailboxes through Kafka's group assignment of the configuration
topic's partitions (a mailbox belongs to the partition its id is keyed to). A process that leaves, or
stops answering, hands its mailboxes on: the next owner starts where the last published checkpoint says,
and anything read after it is read again with the same event ids.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from ingest.app import Ingest
from ingest.kafka import Publisher, PublishError, read_checkpoints
from runtime.configfeed import LiveConfig
from runtime.keys import partition_of
from runtime.metrics import Health
from runtime.settings import WorkerSettings
from schemas import topics
from schemas.config import MailroomConfig
from schemas.errors import ConfigError

__all__ = ["Membership", "run"]

logger = logging.getLogger(__name__)


class Membership:
    """This process's share of the mailboxes: the configuration topic's partitions the group gives it.

    The group membership runs on its own thread (an asyncio loop with aiokafka, whose heartbeats go on
    while a revocation waits for the watchers to finish their batches)."""

    def __init__(self, settings: WorkerSettings, ingest: Ingest) -> None:
        self._settings = settings
        self._kafka = settings.kafka
        self._ingest = ingest
        self._topic = self._kafka.topic(topics.CONFIG)
        self.partitions: set[int] = set()
        self._count = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ingest membership", daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        """Joins the group; ConfigError when the configuration topic does not exist."""
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise self._error
        if not self._ready.is_set():
            raise ConfigError(f"could not join the ingest group at {self._kafka.bootstrap_servers}")

    def mailboxes(self, config: MailroomConfig, partitions: Iterable[int] | None = None) -> set[str]:
        share = self.partitions if partitions is None else set(partitions)
        if not self._count:  # no assignment yet: nothing is this process's
            return set()
        return {b.id for b in config.mailboxes if partition_of(b.id, self._count) in share}

    def _run(self) -> None:
        try:
            asyncio.run(self._member())
        except BaseException as exc:  # reported to start(), or logged when it happens later
            self._error = exc
            if self._ready.is_set():
                logger.exception("ingest: the group membership ended")
        finally:
            self._ready.set()

    async def _member(self) -> None:
        kafka = self._kafka
        session = kafka.session_timeout_seconds
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id="mailroom-ingest",
            group_id=kafka.group("ingest"),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(session * 1000),
            heartbeat_interval_ms=int(max(1.0, session / 10) * 1000),
            # A revocation waits for every watcher to publish its batch and checkpoint.
            rebalance_timeout_ms=int((self._settings.ingest.imap_timeout_seconds + 30) * 1000),
        )
        await consumer.start()
        try:
            if self._topic not in await consumer.topics():
                raise ConfigError(
                    f"topic {self._topic} does not exist: create the topics with `mailroom topics`"
                )
            self._consumer = consumer
            consumer.subscribe([self._topic], listener=_Listener(self))
            self._ready.set()
            while not self._stop.is_set():
                await consumer.getmany(timeout_ms=500)  # the records are not used yet: the share is
        finally:
            await consumer.stop()

    async def revoked(self, partitions: set[int]) -> None:
        ids = self.mailboxes(self._ingest.config, partitions)
        logger.info("ingest: partitions %s revoked: handing on %d mailboxes", sorted(partitions), len(ids))
        self.partitions -= partitions
        await asyncio.get_running_loop().run_in_executor(None, self._hand_on, ids)

    def _hand_on(self, ids: set[str]) -> None:
        self._ingest.release(ids)
        _publish_health(self._ingest)  # "stopped", on the broker before the next owner says "ok"

    async def assigned(self, partitions: set[int]) -> None:
        # The subscription's metadata is known by now: the group's assignor needed it.
        assert self._consumer is not None
        self._count = len(self._consumer.partitions_for_topic(self._topic) or ()) or self._count
        if not self._count:
            raise ConfigError(f"topic {self._topic} has no partitions in the broker's metadata")
        self.partitions |= partitions
        ids = self.mailboxes(self._ingest.config)
        logger.info("ingest: partitions %s assigned: %d mailboxes", sorted(self.partitions), len(ids))
        await asyncio.get_running_loop().run_in_executor(None, self._take, ids)

    def _take(self, ids: set[str]) -> None:
        self._ingest.adopt(read_checkpoints(self._kafka), ids)
        self._ingest.update(owned=ids)

    def failed(self) -> bool:
        """Whether the membership ended by itself (it is logged)."""
        return not self._thread.is_alive() and not self._stop.is_set()

    def stop(self) -> None:
        """Leaves the group (after the caller has released the mailboxes)."""
        self._stop.set()
        self._thread.join(60)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, membership: Membership) -> None:
        self._membership = membership
        self._topic = membership._topic

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self._topic}
        if gone:
            await self._membership.revoked(gone)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._membership.assigned({tp.partition for tp in assigned if tp.topic == self._topic})


def _publish_health(ingest: Ingest) -> None:
    try:
        ingest.publish_health()
    except PublishError as exc:
        logger.warning("ingest: mailbox health not published: %s", exc)


def run(
    settings: WorkerSettings,
    config: MailroomConfig | LiveConfig,
    once: bool = False,
    health: Health | None = None,
) -> int:
    """Reads this process's share of the mailboxes until SIGTERM (`once`: every folder once, without
    joining the group). `health` is beaten by the loop and told whether the group membership lives."""
    live = config if isinstance(config, LiveConfig) else LiveConfig(config)
    health = health or Health("ingest")
    checkpoints = read_checkpoints(settings.kafka)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    ingest = Ingest(
        live.config,
        Publisher(settings.kafka),
        checkpoints,
        settings.ingest,
        settings.poll_seconds,
        owner,
        added_at=live.added_at,
    )
    if once:
        try:
            ingest.poll_once()
        finally:
            ingest.close()
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    ingest.update(owned=set())  # nothing is read until the group assigns this process its share
    membership = Membership(settings, ingest)
    try:
        membership.start()
    except ConfigError as exc:
        ingest.close()
        logger.error("ingest: %s", exc)
        return 2
    health.check("ingest group", lambda: "the group membership ended" if membership.failed() else None)
    live.on_change(lambda new: _follow(new, ingest, membership, settings))
    if live.config != ingest.config:  # changed while the group was joined
        _follow(live.config, ingest, membership, settings)
    logger.info(
        "ingest %s: %d mailboxes configured (from the %s), %d folder checkpoints",
        owner,
        len(live.config.mailboxes),
        live.source,
        len(checkpoints),
    )
    next_tidy = 0.0
    try:
        while not stop.wait(0.25):
            health.beat()
            if membership.failed():
                return 1
            if time.monotonic() >= next_tidy:
                next_tidy = time.monotonic() + 10
                ingest.tidy()
            _publish_health(ingest)
    finally:
        ingest.closing()  # no watcher starts from here on, whatever the group says meanwhile
        ingest.release([b.id for b in ingest.owned()])
        _publish_health(ingest)
        membership.stop()
        ingest.close()
    return 0


def _follow(config: MailroomConfig, ingest: Ingest, membership: Membership, settings: WorkerSettings) -> None:
    """Takes a new configuration: mailboxes added, changed or removed, without a restart."""
    ids = membership.mailboxes(config)
    new = ids - {b.id for b in ingest.owned()}
    if new:
        ingest.adopt(read_checkpoints(settings.kafka), new)
    logger.info(
        "ingest: configuration changed: %d mailboxes, %d of them here", len(config.mailboxes), len(ids)
    )
    ingest.update(config=config, owned=ids)
