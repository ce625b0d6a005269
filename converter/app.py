"""I/O edge: the converter's faust app. One lead or case per thread, and a link for every later letter.

A record id depends only on the mailbox and the thread, a link id on the record and the letter. The
converter's ledger is its own output (the leads, cases and links topics): it reads them back, so a record
or link already published (even just before a crash) is never published again.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from converter.mapping import link_for, record_for
from schemas import topics
from schemas.config import MailroomConfig
from schemas.errors import UnknownMailboxError
from schemas.events import DeadLetter, Event, LeadCreated, LetterThreaded, parse_event, utcnow
from schemas.ledger import TopicLedger, field_of
from schemas.policy import Source, process_message
from schemas.records import record_of_thread
from schemas.settings import WorkerSettings, faust_app_options

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

STAGE = "converter"


def create_app(settings: WorkerSettings, config: MailroomConfig) -> faust.App:
    app = faust.App(**faust_app_options(STAGE, settings))
    threaded = app.topic(settings.kafka.topic(topics.LETTERS_THREADED), key_type=bytes, value_type=bytes)
    out = {
        spec.name: app.topic(settings.kafka.topic(spec), key_type=bytes, value_type=bytes)
        for spec in (topics.LEADS, topics.CASES, topics.LETTER_LINKS, topics.DEAD_LETTERS)
    }
    records: dict[str, str] = {}
    """Record id -> Message-ID of the letter it was made from."""
    links: set[str] = set()

    def remember(spec: topics.TopicSpec, data: bytes) -> None:
        event_id = field_of(data, "event_id")
        if event_id is None:
            return
        if spec is topics.LETTER_LINKS:
            links.add(event_id)
        else:
            records[event_id] = field_of(data, "message_id") or ""

    ledger = TopicLedger(settings.kafka, [topics.LEADS, topics.CASES, topics.LETTER_LINKS], remember)
    ledger.follow(app)

    async def send(spec: topics.TopicSpec, key: str, event: Event) -> None:
        sent = await out[spec.name].send(key=key.encode(), value=event.to_bytes())
        await sent  # wait for the broker: the offset is committed only after this returns

    async def handle_letter(letter: LetterThreaded) -> None:
        mailbox = config.mailbox(letter.mailbox_id)
        if mailbox is None:
            raise UnknownMailboxError(f"mailbox {letter.mailbox_id!r} is not in the configuration")
        kind = record_of_thread(mailbox, letter.thread_id)
        if kind is None:
            return
        await ledger.ensure_current()
        record_type, record_id = kind
        if record_id in records:
            if records[record_id] == letter.message_id:
                return  # the letter the record was made from, read again
            link = link_for(letter, record_type, record_id, utcnow())
            if link.event_id not in links:
                await send(topics.LETTER_LINKS, record_id, link)
                links.add(link.event_id)
                logger.info(
                    "%s: letter %s linked to %s %s", mailbox.id, letter.message_id, record_type, record_id
                )
            return
        record = record_for(letter, mailbox, utcnow())
        if record is None:
            return
        spec = topics.LEADS if isinstance(record, LeadCreated) else topics.CASES
        await send(spec, record.event_id, record)
        records[record.event_id] = letter.message_id
        logger.info(
            "%s: %s %s from letter %s", mailbox.id, type(record).__name__, record.event_id, letter.message_id
        )

    async def publish_dead(dead: DeadLetter) -> None:
        await send(topics.DEAD_LETTERS, dead.mailbox_id or dead.source_key or "", dead)

    async def process(event: faust.EventT[Any]) -> None:
        msg = event.message
        source = Source(STAGE, msg.topic, msg.partition, msg.offset, event.key, event.value)
        await process_message(
            source, lambda: handle_letter(parse_event(LetterThreaded, event.value)), publish_dead
        )

    @app.agent(threaded)
    async def convert(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            await process(event)

    return app
