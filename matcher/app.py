"""I/O edge: the matcher's stream handler. Reads received letters, remembers threads, publishes what comes
next.

Thread membership (mailbox, Message-ID -> thread) is the matcher's ledger: it is read back from the
threaded letters and the reply requests it published, which carry every letter's and reply's thread.
"""

from __future__ import annotations

import logging

from matcher.decision import decide
from matcher.limits import ReplyHistory
from matcher.rules import compile_rules
from matcher.threads import ThreadIndex
from runtime.ledger import TopicLedger
from runtime.policy import Source
from runtime.settings import WorkerSettings
from runtime.stream import Emitter, StreamWorker
from schemas import topics
from schemas.config import MailroomConfig
from schemas.errors import EventError, UnknownMailboxError
from schemas.events import LetterReceived, LetterThreaded, ReplyRequested, parse_event, utcnow

__all__ = ["create_worker"]

logger = logging.getLogger(__name__)

STAGE = "matcher"


def create_worker(settings: WorkerSettings, config: MailroomConfig) -> StreamWorker:
    threads = ThreadIndex()
    history = ReplyHistory()

    def remember(spec: topics.TopicSpec, data: bytes) -> None:
        try:
            if spec is topics.LETTERS_THREADED:
                threads.remember_letter(parse_event(LetterThreaded, data))
                return
            reply = parse_event(ReplyRequested, data)
        except EventError as exc:
            # Others publish employee replies on the requests topic; one we cannot read is theirs to fix.
            logger.warning("ledger: %s skipped: %s", spec.name, exc)
            return
        threads.remember_reply(reply)
        history.remember(reply)

    def forget() -> None:
        threads.clear()
        history.clear()

    ledger = TopicLedger(
        settings.kafka, [topics.LETTERS_THREADED, topics.REPLIES_REQUESTED], remember, forget
    )
    rules = {box.id: compile_rules(box) for box in config.mailboxes}
    letters: dict[tuple[int, int], LetterReceived] = {}
    """The letter of the message under way, by (partition, offset), for its dead letter should it fail."""

    async def handle(source: Source, out: Emitter) -> None:
        letter = parse_event(LetterReceived, source.value)
        letters[(source.partition, source.offset)] = letter
        mailbox = config.mailbox(letter.mailbox_id)
        if mailbox is None:
            raise UnknownMailboxError(f"mailbox {letter.mailbox_id!r} is not in the configuration")
        outcome = decide(letter, mailbox, config, rules[mailbox.id], threads, history, utcnow())
        out.emit(topics.LETTERS_THREADED, mailbox.id, outcome.threaded)
        out.emit(topics.LETTERS_SHARED, mailbox.id, outcome.shared)
        for reply in outcome.replies:
            out.emit(topics.REPLIES_REQUESTED, mailbox.id, reply)
        out.emit(topics.LETTERS_DECIDED, mailbox.id, outcome.decided)
        # Remembered now, not when the broker acknowledges: the next letter of the batch may answer this
        # one. Should the broker not take them, the stream loop rewinds the ledger and the consumer.
        threads.remember_letter(outcome.threaded)
        for reply in outcome.replies:
            threads.remember_reply(reply)
            history.remember(reply)
        logger.info(
            "%s: %s letter %s thread %s%s, replies %d%s",
            source.where(),
            letter.mailbox_id,
            letter.headers.message_id,
            outcome.threaded.thread_id,
            " (new)" if outcome.threaded.starts_thread else "",
            len(outcome.replies),
            f", no auto-reply: {outcome.decided.skipped_because}" if outcome.decided.skipped_because else "",
        )
        letters.pop((source.partition, source.offset), None)

    return StreamWorker(
        STAGE,
        settings.kafka,
        topics.LETTERS_RECEIVED,
        handle,
        ledger,
        letter_of=lambda source: letters.pop((source.partition, source.offset), None),
    )
