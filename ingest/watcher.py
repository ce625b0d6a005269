"""I/O edge: one folder of one mailbox, read on its own thread over its own connection, so that a slow,
hung or failing mailbox never delays another.

A watcher catches up (every letter after its checkpoint, in UID order), then waits for news with IDLE
(or polls), and again. Letters go out before the checkpoint that covers them, so a crash in between only
re-reads letters, and a re-read letter has the same event id (mailbox, folder, UIDVALIDITY, UID):
nothing is lost or made twice. Faults are retried with exponential backoff and jitter; a refused login
is retried slowly (the supervisor restarts the watcher at once when the mailbox's settings change).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime

from ingest.errors import ImapError, ImapLoginError
from ingest.health import HealthBoard
from ingest.imap import FetchedLetter, FolderStatus, ImapReader
from ingest.kafka import Publisher, PublishError
from ingest.parse import letter_event
from ingest.progress import FolderProgress, message_id_in
from runtime import logs, metrics
from runtime.settings import IngestSettings
from schemas import topics
from schemas.config import Mailbox
from schemas.events import DeadLetter, Event, LetterReceived
from schemas.ids import deterministic_id, letter_id

__all__ = ["DEAD_LETTER_HEAD_BYTES", "MAX_LETTER_BYTES", "FolderWatcher"]

logger = logging.getLogger(__name__)

MAX_LETTER_BYTES = 10 * 1024 * 1024
"""Larger letters stay in the mailbox and are reported on the dead-letter topic, with their head."""
DEAD_LETTER_HEAD_BYTES = 1024 * 1024
"""How much of a too-large letter is downloaded and kept in its dead letter."""


class FolderWatcher:
    def __init__(
        self,
        box: Mailbox,
        folder: str,
        publisher: Publisher,
        board: HealthBoard,
        settings: IngestSettings,
        poll_seconds: float,
        progress: FolderProgress | None,
        clock: Callable[[], datetime],
        reader: ImapReader | None = None,
        added_at: datetime | None = None,
    ) -> None:
        self.box = box
        self._added_at = added_at
        self.folder = folder
        self._publisher = publisher
        self._board = board
        self._settings = settings
        self._poll_seconds = box.imap.poll_seconds or poll_seconds
        self.progress = progress
        self._clock = clock
        self._reader = reader or ImapReader(box.imap, settings.imap_timeout_seconds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"{self.box.id}/{self.folder}"

    # -- the thread --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"ingest {self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Asks the thread to end after the step it is in (a letter batch is published and checkpointed
        whole, or not at all)."""
        self._stop.set()

    @property
    def reader(self) -> ImapReader:
        return self._reader

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the thread; False when it is still in an IMAP step after `timeout`. The connection
        stays open (see `reader`) for whoever reads the folder next."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        return True

    def _run(self) -> None:
        logs.note(mailbox=self.box.id, folder=self.folder)  # this thread's log lines say whose they are
        if not self._reader.connected:
            self._report("connecting")
        delay = self._settings.backoff_first_seconds
        trouble_since: float | None = None
        while not self._stop.is_set():
            try:
                self.drain()
                delay, trouble_since = self._settings.backoff_first_seconds, None
                self._report("ok")
                self._reader.wait(self._stop, self._settings.idle_seconds, self._poll_seconds)
            except ImapLoginError as exc:
                logger.error("mailbox %s: %s", self.name, exc)
                self._report("failing", str(exc), _slowly(exc.advice, self._settings.failing_retry_seconds))
                self._reader.close()
                self._stop.wait(self._settings.failing_retry_seconds)
            except (ImapError, PublishError, Exception) as exc:
                trouble_since = trouble_since if trouble_since is not None else time.monotonic()
                failing = time.monotonic() - trouble_since >= self._settings.failing_after_seconds
                if isinstance(exc, ImapError | PublishError):
                    logger.warning("mailbox %s: %s (again in %.0f s)", self.name, exc, delay)
                else:  # a bug must not end the thread silently
                    logger.exception("mailbox %s: unexpected failure (again in %.0f s)", self.name, delay)
                if not isinstance(exc, PublishError):
                    self._reader.close()
                advice = getattr(exc, "advice", None)
                self._report("failing" if failing else "retrying", str(exc) or type(exc).__name__, advice)
                self._stop.wait(random.uniform(0.5, 1.0) * delay)
                delay = min(delay * 2, self._settings.backoff_max_seconds)

    def _report(self, state: str, error: str | None = None, advice: str | None = None) -> None:
        waiting = "none"
        if state == "ok":
            waiting = "idle" if self._reader.supports_idle() else "poll"
        last = self.progress.last_uid if self.progress is not None else 0
        self._board.folder(
            self.box.id, self.box.organization, self.folder, state, waiting, last, error, advice
        )

    # -- reading -----------------------------------------------------------------------------------------

    def drain(self) -> int:
        """Publishes every letter after the checkpoint, batch by batch, each followed by its checkpoint;
        returns how many events (letters and dead letters) went out."""
        box, folder = self.box, self.folder
        status = self._reader.select(folder)
        progress = self.progress
        if progress is None:
            since = box.read_from or self._added_at
            if since is None:
                progress = FolderProgress.starting(
                    box.id, folder, status.uidvalidity, status.uidnext, self._clock()
                )
                logger.info("mailbox %s: first read; starting after UID %d", self.name, progress.last_uid)
            else:
                progress = FolderProgress.starting_from(box.id, folder, status.uidvalidity, since)
                logger.info("mailbox %s: first read; letters since %s", self.name, since.isoformat())
            self._checkpoint(progress)
        count = 0
        while not self._stop.is_set():
            if progress.uidvalidity != status.uidvalidity:
                logger.warning(
                    "mailbox %s: UIDVALIDITY %d -> %d: the folder was recreated; reading it again, without "
                    "the letters already read",
                    self.name,
                    progress.uidvalidity,
                    status.uidvalidity,
                )
                progress = progress.renumbered(status.uidvalidity)
                self._checkpoint(progress)
            current = progress
            batch = self._reader.read_new(
                folder,
                current.uidvalidity,
                current.last_uid,
                max_bytes=MAX_LETTER_BYTES,
                head_bytes=DEAD_LETTER_HEAD_BYTES,
                wanted=current.unread if current.recheck else None,
            )
            if batch.uidvalidity != current.uidvalidity:  # recreated since it was selected
                status = FolderStatus(batch.uidvalidity, 0)
                continue
            if not batch.last_uid:
                if current.recheck:
                    self._checkpoint(current.caught_up())
                return count
            items: list[tuple[topics.TopicSpec, str, Event]] = []
            for letter in batch.letters:
                event = self._event_for(batch.uidvalidity, letter)
                spec = topics.LETTERS_RECEIVED if isinstance(event, LetterReceived) else topics.DEAD_LETTERS
                items.append((spec, box.id, event))
            if items:
                self._publisher.publish(items)
                self._board.letter(box.id, self._clock())
            progress = current.advanced(
                batch.last_uid, [(message_id_in(x.raw), x.size, x.internal_date) for x in batch.letters]
            )
            self._checkpoint(progress)
            count += len(items)
        return count

    def _checkpoint(self, progress: FolderProgress) -> None:
        point = progress.checkpoint(self._clock())
        self._publisher.publish([(topics.INGEST_CHECKPOINTS, f"{self.box.id}/{self.folder}", point)])
        self.progress = progress

    def _event_for(self, uidvalidity: int, letter: FetchedLetter) -> Event:
        """The letter's LetterReceived, or the DeadLetter saying why it cannot be one."""
        box, folder = self.box, self.folder
        metrics.MESSAGES_IN.labels("ingest", "imap").inc()
        if not letter.complete or letter.size > MAX_LETTER_BYTES:
            return self._too_large(uidvalidity, letter.uid, letter.size, letter.raw)
        try:
            event = letter_event(
                box.id, box.organization, folder, uidvalidity, letter.uid, letter.internal_date, letter.raw
            )
            event.to_bytes()  # fail here, not in the publisher, if any part of it cannot be sent
        except Exception as exc:  # parsing is meant never to raise; what it misses is dead-lettered
            logger.error("mailbox %s uid %d: cannot make an event: %s", self.name, letter.uid, exc)
            return DeadLetter.of(
                "ingest",
                exc,
                f"imap:{box.id}/{folder}",
                letter.raw,
                "letter",
                partition=uidvalidity,
                offset=letter.uid,
                key=box.id.encode(),
                mailbox_id=box.id,
            )
        logger.info("mailbox %s uid %d: letter %s", self.name, letter.uid, event.headers.message_id)
        return event

    def _too_large(self, uidvalidity: int, uid: int, size: int, head: bytes) -> DeadLetter:
        box, folder = self.box, self.folder
        logger.warning("mailbox %s uid %d: letter of %d bytes is too large", self.name, uid, size)
        return DeadLetter(
            event_id=deterministic_id("dead-letter", letter_id(box.id, folder, uidvalidity, uid)),
            occurred_at=self._clock(),
            stage="ingest",
            reason=f"letter of {size} bytes is over the {MAX_LETTER_BYTES}-byte limit; it stays in "
            f"{folder} (UIDVALIDITY {uidvalidity}, UID {uid}); the original holds its first {len(head)} "
            "bytes",
            error_type="LetterTooLarge",
            source_topic=f"imap:{box.id}/{folder}",
            source_key=box.id,
            mailbox_id=box.id,
            original=head[:DEAD_LETTER_HEAD_BYTES],
            original_kind="letter",
        )


def _slowly(advice: str | None, retry_seconds: float) -> str:
    again = f"tried again every {retry_seconds / 60:.0f} min, and at once when the mailbox's settings change"
    return f"{advice}; {again}" if advice else again
