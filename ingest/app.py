"""I/O edge: the mailboxes this ingest process reads, each folder by its own watcher.

The supervisor keeps one FolderWatcher per folder of every mailbox it owns, starts and stops them as the
configuration and the ownership change (a mailbox's reading position survives both), and publishes the
mailboxes' health as it changes. `poll_once` reads every folder once in turn, without threads (`mailroom
ingest --once`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from ingest.errors import ImapError
from ingest.health import HealthBoard
from ingest.imap import ImapReader
from ingest.kafka import Publisher, PublishError
from ingest.progress import FolderProgress
from ingest.watcher import DEAD_LETTER_HEAD_BYTES, MAX_LETTER_BYTES, FolderWatcher
from runtime.settings import IngestSettings
from schemas import topics
from schemas.config import Mailbox, MailroomConfig
from schemas.events import IngestCheckpoint, utcnow

__all__ = ["DEAD_LETTER_HEAD_BYTES", "MAX_LETTER_BYTES", "Ingest"]

logger = logging.getLogger(__name__)


def _reads_alike(a: Mailbox, b: Mailbox) -> bool:
    """Whether a watcher of `a` can go on for `b` (rules and processing do not concern ingest)."""
    return (a.imap, a.organization, a.email) == (b.imap, b.organization, b.email)


class Ingest:
    def __init__(
        self,
        config: MailroomConfig,
        publisher: Publisher,
        checkpoints: dict[tuple[str, str], IngestCheckpoint],
        settings: IngestSettings | None = None,
        poll_seconds: float = 5.0,
        owner: str = "",
        clock: Callable[[], datetime] = utcnow,
        reader_factory: Callable[[Mailbox], ImapReader] | None = None,
        added_at: Callable[[str], datetime | None] = lambda _: None,
    ) -> None:
        self._config = config
        self._publisher = publisher
        self._settings = settings or IngestSettings()
        self._poll_seconds = poll_seconds
        self._clock = clock
        self._progress = {key: FolderProgress.of(point) for key, point in checkpoints.items()}
        self._reader_factory = reader_factory
        self._added_at = added_at
        """When a mailbox was added (the configuration topic says): where a folder never read starts."""
        self.board = HealthBoard(owner, clock)
        self._watchers: dict[tuple[str, str], FolderWatcher] = {}
        self._owned: set[str] | None = None
        """The mailboxes this process reads; None: all of them."""
        self._parked: dict[tuple[str, str], tuple[Mailbox, ImapReader, float]] = {}
        """Connections of watchers that stopped, kept a while: a rebalance that gives this process the
        same mailboxes back (the group revokes every partition first) restarts them without new logins."""
        self._lock = threading.RLock()
        """The group's thread and the main thread both start and stop watchers."""
        self._closing = False

    @property
    def config(self) -> MailroomConfig:
        return self._config

    def owned(self) -> list[Mailbox]:
        return [b for b in self._config.mailboxes if self._owned is None or b.id in self._owned]

    def _watcher(self, box: Mailbox, folder: str) -> FolderWatcher:
        reader = None
        parked = self._parked.pop((box.id, folder), None)
        if parked is not None:
            if parked[0].imap == box.imap:
                reader = parked[1]
            else:
                parked[1].close()
        if reader is None and self._reader_factory is not None:
            reader = self._reader_factory(box)
        return FolderWatcher(
            box,
            folder,
            self._publisher,
            self.board,
            self._settings,
            self._poll_seconds,
            self._progress.get((box.id, folder)),
            self._clock,
            reader,
            self._added_at(box.id),
        )

    # -- one pass, no threads ----------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Reads every folder of every owned mailbox once, in turn; returns how many events (letters and
        dead letters) were published. A failing mailbox is logged and skipped."""
        published = 0
        for box in self.owned():
            for folder in box.folders:
                key = (box.id, folder)
                watcher = self._watchers.get(key)
                if watcher is None or not _reads_alike(watcher.box, box):
                    watcher = self._watchers[key] = self._watcher(box, folder)
                try:
                    published += watcher.drain()
                except (ImapError, PublishError) as exc:
                    logger.warning("mailbox %s folder %s: %s", box.id, folder, exc)
                    watcher.reader.close()  # the next pass reconnects
                if watcher.progress is not None:
                    self._progress[key] = watcher.progress
        return published

    # -- watchers on threads -----------------------------------------------------------------------------

    def update(self, config: MailroomConfig | None = None, owned: Iterable[str] | None = ()) -> None:
        """Takes a new configuration and/or a new set of owned mailboxes (None: all, () : unchanged), then
        starts, restarts and stops watchers to match: a folder's reading position is kept throughout."""
        with self._lock:
            if config is not None:
                self._config = config
            if owned != ():
                self._owned = None if owned is None else set(owned)
            wanted = {(b.id, f): b for b in self.owned() for f in b.folders}
            before = {box_id for box_id, _ in self._watchers}
            ending = []
            for key, watcher in list(self._watchers.items()):
                box = wanted.get(key)
                if box is None or not _reads_alike(watcher.box, box):
                    ending.append(key)
                else:
                    watcher.box = box  # same reading; the newest settings for the events it makes
            self._retire(ending)
            for key, box in wanted.items():
                if key not in self._watchers and not self._closing:
                    watcher = self._watchers[key] = self._watcher(box, key[1])
                    watcher.start()
            configured = {b.id for b in self._config.mailboxes}
            for box_id in before - {box_id for box_id, _ in self._watchers}:
                removed = box_id not in configured
                if removed:
                    logger.info("mailbox %s was removed from the configuration: no longer read", box_id)
                self.board.stopped(box_id, removed=removed)

    def _retire(self, keys: Iterable[tuple[str, str]]) -> None:
        """Stops these watchers, all at once (each finishes the batch it is in), and keeps where each got."""
        watchers = [(key, self._watchers.pop(key)) for key in keys]
        for _, watcher in watchers:
            watcher.stop()
        for key, watcher in watchers:
            if watcher.join(self._settings.imap_timeout_seconds + 5):
                if watcher.reader.connected and not self._closing:
                    self._parked[key] = (watcher.box, watcher.reader, time.monotonic())
                else:
                    watcher.reader.close()
            else:  # its connection is closed under it, which ends the step it hangs in
                logger.warning("mailbox %s: its watcher did not stop in time", watcher.name)
                watcher.reader.close()
            if watcher.progress is not None:
                self._progress[key] = watcher.progress

    def tidy(self, keep_seconds: float = 30.0) -> None:
        """Closes the connections parked longer than `keep_seconds`."""
        with self._lock:
            now = time.monotonic()
            for key, (_, reader, since) in list(self._parked.items()):
                if self._closing or now - since > keep_seconds:
                    del self._parked[key]
                    reader.close()

    def release(self, mailbox_ids: Iterable[str]) -> None:
        """Stops reading these mailboxes (another process takes them), waiting until each watcher has
        published what it read and its checkpoint."""
        with self._lock:
            ids = set(mailbox_ids)
            self._retire([key for key in self._watchers if key[0] in ids])
            for box_id in ids:
                self.board.stopped(box_id)
            for key in [k for k in self._progress if k[0] in ids]:
                del self._progress[key]  # the next owner's checkpoint is the truth when it comes back

    def adopt(self, checkpoints: dict[tuple[str, str], IngestCheckpoint], mailbox_ids: Iterable[str]) -> None:
        """The reading positions of mailboxes this process is about to own, as their last owner left them."""
        with self._lock:
            ids = set(mailbox_ids)
            for key, point in checkpoints.items():
                if key[0] in ids and key not in self._watchers:
                    self._progress[key] = FolderProgress.of(point)

    def closing(self) -> None:
        """From now on no watcher is started (the process is stopping)."""
        with self._lock:
            self._closing = True

    def publish_health(self) -> int:
        """Publishes the mailboxes' health that changed; returns how many records went out."""
        changes = self.board.changes()
        if changes:
            self._publisher.publish([(topics.INGEST_HEALTH, box_id, h) for box_id, h in changes])
        return len(changes)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._retire(list(self._watchers))
        self.tidy()
        self._publisher.close()
