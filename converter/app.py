"""I/O edge: the converter's stream handler. One lead or case per thread, and a link for every later letter.

A record id depends only on the mailbox and the thread, a link id on the record and the letter. The
converter's ledger holds the id of every record and link it published, so a record or link already
published, even just before a crash, is never published again; the letter a record was made from, read
again, is the one the matcher still calls the start of its thread.
"""

from __future__ import annotations

import logging

from converter.mapping import link_for, record_for
from runtime.ledger import Fact, Ledger, field_of
from runtime.policy import Source
from runtime.settings import WorkerSettings
from runtime.stream import Emitter, StreamWorker
from schemas import topics
from schemas.config import MailroomConfig
from schemas.errors import UnknownMailboxError
from schemas.events import LeadCreated, LetterThreaded, parse_event, utcnow
from schemas.records import record_of_thread

__all__ = ["create_worker"]

logger = logging.getLogger(__name__)

STAGE = "converter"


def create_worker(settings: WorkerSettings, config: MailroomConfig) -> StreamWorker:
    records: set[str] = set()
    links: set[str] = set()

    def fold_fact(fact: Fact) -> None:
        if fact.get("t") == "link":
            links.add(str(fact["id"]))
        elif fact.get("t") == "record":
            records.add(str(fact["id"]))

    def fold_output(spec: topics.TopicSpec, data: bytes) -> Fact | None:
        event_id = field_of(data, "event_id")
        if event_id is None:
            return None
        fact: Fact = {"t": "link" if spec is topics.LETTER_LINKS else "record", "id": event_id}
        fold_fact(fact)
        return fact

    def forget() -> None:
        records.clear()
        links.clear()

    ledger = Ledger(
        settings.kafka,
        STAGE,
        [topics.LEADS, topics.CASES, topics.LETTER_LINKS],
        fold_fact,
        fold_output,
        forget,
    )

    async def handle(source: Source, out: Emitter) -> None:
        letter = parse_event(LetterThreaded, source.value)
        mailbox = config.mailbox(letter.mailbox_id)
        if mailbox is None:
            raise UnknownMailboxError(f"mailbox {letter.mailbox_id!r} is not in the configuration")
        kind = record_of_thread(mailbox, letter.thread_id)
        if kind is None:
            return
        record_type, record_id = kind
        if record_id in records:
            if letter.starts_thread:
                return  # the letter the record was made from, read again (a copy, a replay)
            link = link_for(letter, record_type, record_id, utcnow())
            if link.event_id not in links:
                out.emit(topics.LETTER_LINKS, record_id, link)
                out.remember(link.event_id, {"t": "link", "id": link.event_id})
                links.add(link.event_id)
                logger.info(
                    "%s: %s letter %s linked to %s %s",
                    source.where(),
                    mailbox.id,
                    letter.message_id,
                    record_type,
                    record_id,
                )
            return
        record = record_for(letter, mailbox, utcnow())
        if record is None:
            return
        out.emit(topics.LEADS if isinstance(record, LeadCreated) else topics.CASES, record.event_id, record)
        out.remember(record.event_id, {"t": "record", "id": record.event_id})
        records.add(record.event_id)
        logger.info(
            "%s: %s %s %s from letter %s",
            source.where(),
            mailbox.id,
            type(record).__name__,
            record.event_id,
            letter.message_id,
        )

    return StreamWorker(STAGE, settings.kafka, topics.LETTERS_THREADED, handle, ledger)
