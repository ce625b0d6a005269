"""I/O edge: polls every mailbox folder and publishes each new letter, then the folder's checkpoint.

Letters go out before the checkpoint that covers them, so a crash in between only re-reads letters, and
a re-read letter has the same event id (mailbox, folder, UIDVALIDITY, UID): nothing is lost or made twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from ingest.errors import ImapError
from ingest.imap import FetchedLetter, ImapReader
from ingest.kafka import Publisher, PublishError
from ingest.parse import letter_event
from schemas import topics
from schemas.config import Mailbox, MailroomConfig
from schemas.events import DeadLetter, Event, IngestCheckpoint, LetterReceived, utcnow
from schemas.ids import deterministic_id, letter_id

__all__ = ["MAX_LETTER_BYTES", "Ingest"]

logger = logging.getLogger(__name__)

MAX_LETTER_BYTES = 10 * 1024 * 1024
"""Larger letters stay in the mailbox and are reported on the dead-letter topic, with their head."""
DEAD_LETTER_HEAD_BYTES = 1024 * 1024
"""How much of a too-large letter is downloaded and kept in its dead letter."""


class Ingest:
    def __init__(
        self,
        config: MailroomConfig,
        publisher: Publisher,
        checkpoints: dict[tuple[str, str], IngestCheckpoint],
        reader_factory: Callable[[Mailbox], ImapReader] = lambda box: ImapReader(box.imap),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._publisher = publisher
        self._checkpoints = dict(checkpoints)
        self._readers = {box.id: reader_factory(box) for box in config.mailboxes}
        self._clock = clock

    def poll_once(self) -> int:
        """Reads every folder of every mailbox once; returns how many events (letters and dead letters)
        were published."""
        published = 0
        for box in self._config.mailboxes:
            for folder in box.folders:
                try:
                    published += self._drain_folder(box, folder)
                except (ImapError, PublishError) as exc:
                    # One mailbox or a broker hiccup must not stop the others; the next poll tries again.
                    logger.warning("mailbox %s folder %s: %s", box.id, folder, exc)
        return published

    def _drain_folder(self, box: Mailbox, folder: str) -> int:
        count = 0
        while True:
            point = self._checkpoints.get((box.id, folder))
            batch = self._readers[box.id].read_new(
                folder,
                point.uidvalidity if point else None,
                point.last_uid if point else 0,
                max_bytes=MAX_LETTER_BYTES,
                head_bytes=DEAD_LETTER_HEAD_BYTES,
            )
            if not batch.letters:
                return count
            items: list[tuple[topics.TopicSpec, str, Event]] = []
            for letter in batch.letters:
                event = self._event_for(box, folder, batch.uidvalidity, letter)
                spec = topics.LETTERS_RECEIVED if isinstance(event, LetterReceived) else topics.DEAD_LETTERS
                items.append((spec, box.id, event))
            last = batch.letters[-1].uid
            checkpoint = IngestCheckpoint(
                event_id=deterministic_id("ingest-checkpoint", box.id, folder, batch.uidvalidity, last),
                occurred_at=self._clock(),
                mailbox_id=box.id,
                folder=folder,
                uidvalidity=batch.uidvalidity,
                last_uid=last,
            )
            self._publisher.publish(items)
            self._publisher.publish([(topics.INGEST_CHECKPOINTS, f"{box.id}/{folder}", checkpoint)])
            self._checkpoints[(box.id, folder)] = checkpoint
            count += len(items)

    def _event_for(self, box: Mailbox, folder: str, uidvalidity: int, letter: FetchedLetter) -> Event:
        """The letter's LetterReceived, or the DeadLetter saying why it cannot be one."""
        if not letter.complete or letter.size > MAX_LETTER_BYTES:
            return self._too_large(box, folder, uidvalidity, letter.uid, letter.size, letter.raw)
        try:
            event = letter_event(
                box.id, box.organization, folder, uidvalidity, letter.uid, letter.internal_date, letter.raw
            )
            event.to_bytes()  # fail here, not in the publisher, if any part of it cannot be sent
        except Exception as exc:  # parsing is meant never to raise; what it misses is dead-lettered
            logger.error("mailbox %s %s uid %d: cannot make an event: %s", box.id, folder, letter.uid, exc)
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
        logger.info("mailbox %s %s uid %d: letter %s", box.id, folder, letter.uid, event.headers.message_id)
        return event

    def _too_large(
        self, box: Mailbox, folder: str, uidvalidity: int, uid: int, size: int, head: bytes
    ) -> DeadLetter:
        logger.warning("mailbox %s %s uid %d: letter of %d bytes is too large", box.id, folder, uid, size)
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

    def run(self, poll_seconds: float, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll_once()
            stop.wait(poll_seconds)

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._publisher.close()
