"""I/O edge: the converter's stream handler. One lead or case per thread, and a link for every later letter.

A record id depends only on the mailbox and the thread, a link id on the record and the letter. The
converter's ledger holds the id of every record and link it published, so a record or link already
published, even just before a crash, is never published again; the letter a record was made from, read
again, is the one the matcher still calls the start of its thread.
"""

from __future__ import annotations

import logging

from converter.mapping import link_for, record_for
from runtime import logs
from runtime.configfeed import LiveConfig
from runtime.ledger import Fact, Ledger, field_of
from runtime.policy import Source
from runtime.settings import WorkerSettings
from runtime.stream import Emitter, StreamWorker
from schemas import topics
from schemas.config import MailroomConfig
from schemas.errors import UnknownMailboxError
from schemas.events import LeadCreated, LetterThreaded, parse_event, utcnow
from schemas.records import RecordType, record_of_thread

__all__ = ["create_worker"]

logger = logging.getLogger(__name__)

STAGE = "converter"


def record_fact(record_id: str, kind: str, mailbox_id: str | None, thread_id: str | None) -> Fact:
    """What the ledger keeps of a record made: its id, and the thread it was made for."""
    return {"t": "record", "id": record_id, "type": kind, "m": mailbox_id, "thread": thread_id}


def create_worker(settings: WorkerSettings, config: MailroomConfig | LiveConfig) -> StreamWorker:
    live = config if isinstance(config, LiveConfig) else LiveConfig(config)
    records: set[str] = set()
    links: set[str] = set()
    decided: dict[tuple[str, str], tuple[RecordType, str] | None] = {}
    """(mailbox, thread) -> the record its first letter made, or None when it made none: a thread keeps
    what was decided for it, whatever the mailbox's processing says later (a replay makes nothing anew)."""

    def fold_fact(fact: Fact) -> None:
        if fact.get("t") == "link":
            links.add(str(fact["id"]))
        elif fact.get("t") == "record":
            records.add(str(fact["id"]))
            if fact.get("thread"):
                decided[(fact["m"], fact["thread"])] = (fact["type"], str(fact["id"]))
        elif fact.get("t") == "thread":
            decided[(fact["m"], fact["thread"])] = None

    def fold_output(spec: topics.TopicSpec, data: bytes) -> Fact | None:
        event_id = field_of(data, "event_id")
        if event_id is None:
            return None
        fact: Fact
        if spec is topics.LETTER_LINKS:
            fact = {"t": "link", "id": event_id}
        else:
            kind = "lead" if spec is topics.LEADS else "case"
            fact = record_fact(event_id, kind, field_of(data, "mailbox_id"), field_of(data, "thread_id"))
        fold_fact(fact)
        return fact

    def forget() -> None:
        records.clear()
        links.clear()
        decided.clear()

    ledger = Ledger(
        settings.kafka,
        STAGE,
        [topics.LEADS, topics.CASES, topics.LETTER_LINKS],
        fold_fact,
        fold_output,
        forget,
    )

    def no_record(letter: LetterThreaded, out: Emitter) -> None:
        """The first letter of a thread made no record: the thread makes none later either."""
        if letter.starts_thread:
            fact: Fact = {"t": "thread", "m": letter.mailbox_id, "thread": letter.thread_id}
            out.remember(f"thread:{letter.mailbox_id}:{letter.thread_id}", fact)
            fold_fact(fact)

    async def handle(source: Source, out: Emitter) -> None:
        letter = parse_event(LetterThreaded, source.value)
        logs.note(message_id=letter.message_id)
        mailbox = live.config.mailbox(letter.mailbox_id)
        if mailbox is None:
            raise UnknownMailboxError(f"mailbox {letter.mailbox_id!r} is not in the configuration")
        thread = (mailbox.id, letter.thread_id)
        if thread in decided:
            kind = decided[thread]
        else:
            kind = record_of_thread(mailbox, letter.thread_id)
            if kind is None or letter.kept_from is not None:
                no_record(letter, out)
                return
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
            no_record(letter, out)
            return
        out.emit(topics.LEADS if isinstance(record, LeadCreated) else topics.CASES, record.event_id, record)
        made = record_fact(record.event_id, record_type, mailbox.id, letter.thread_id)
        out.remember(record.event_id, made)
        fold_fact(made)
        logger.info(
            "%s: %s %s %s from letter %s",
            source.where(),
            mailbox.id,
            type(record).__name__,
            record.event_id,
            letter.message_id,
        )

    return StreamWorker(STAGE, settings.kafka, topics.LETTERS_THREADED, handle, ledger)
