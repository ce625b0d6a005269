"""I/O edge: the matcher's faust app. Reads received letters, remembers threads, publishes what comes next.

Thread membership (mailbox, Message-ID -> thread) is the matcher's ledger: it is read back from the
threaded letters and the reply requests it published, which carry every letter's and reply's thread.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from matcher.decision import decide
from matcher.limits import ReplyHistory
from matcher.rules import compile_rules
from matcher.threads import ThreadIndex
from schemas import topics
from schemas.config import MailroomConfig
from schemas.errors import EventError, UnknownMailboxError
from schemas.events import (
    DeadLetter,
    Event,
    LetterReceived,
    LetterThreaded,
    ReplyRequested,
    parse_event,
    utcnow,
)
from schemas.ledger import TopicLedger
from schemas.policy import Source, process_message
from schemas.settings import WorkerSettings, faust_app_options

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

STAGE = "matcher"


def create_app(settings: WorkerSettings, config: MailroomConfig) -> faust.App:
    app = faust.App(**faust_app_options(STAGE, settings))
    received = app.topic(settings.kafka.topic(topics.LETTERS_RECEIVED), key_type=bytes, value_type=bytes)
    out = {
        spec.name: app.topic(settings.kafka.topic(spec), key_type=bytes, value_type=bytes)
        for spec in (
            topics.LETTERS_THREADED,
            topics.LETTERS_SHARED,
            topics.LETTERS_DECIDED,
            topics.REPLIES_REQUESTED,
            topics.DEAD_LETTERS,
        )
    }
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

    ledger = TopicLedger(settings.kafka, [topics.LETTERS_THREADED, topics.REPLIES_REQUESTED], remember)
    ledger.follow(app)
    rules = {box.id: compile_rules(box) for box in config.mailboxes}

    async def send(spec: topics.TopicSpec, key: str, event: Event) -> None:
        sent = await out[spec.name].send(key=key.encode(), value=event.to_bytes())
        await sent  # wait for the broker: the offset is committed only after this returns

    async def handle_letter(letter: LetterReceived) -> None:
        mailbox = config.mailbox(letter.mailbox_id)
        if mailbox is None:
            raise UnknownMailboxError(f"mailbox {letter.mailbox_id!r} is not in the configuration")
        await ledger.ensure_current()
        outcome = decide(letter, mailbox, config, rules[mailbox.id], threads, history, utcnow())
        await send(topics.LETTERS_THREADED, mailbox.id, outcome.threaded)
        await send(topics.LETTERS_SHARED, mailbox.id, outcome.shared)
        for reply in outcome.replies:
            await send(topics.REPLIES_REQUESTED, mailbox.id, reply)
        await send(topics.LETTERS_DECIDED, mailbox.id, outcome.decided)
        threads.remember_letter(outcome.threaded)
        for reply in outcome.replies:
            threads.remember_reply(reply)
            history.remember(reply)
        logger.info(
            "%s: letter %s thread %s%s, replies %d%s",
            letter.mailbox_id,
            letter.headers.message_id,
            outcome.threaded.thread_id,
            " (new)" if outcome.threaded.starts_thread else "",
            len(outcome.replies),
            f", no auto-reply: {outcome.decided.skipped_because}" if outcome.decided.skipped_because else "",
        )

    async def publish_dead(dead: DeadLetter) -> None:
        await send(topics.DEAD_LETTERS, dead.mailbox_id or dead.source_key or "", dead)

    async def process(event: faust.EventT[Any]) -> None:
        msg = event.message
        source = Source(STAGE, msg.topic, msg.partition, msg.offset, event.key, event.value)
        logger.debug("%s: received", source.where())
        parsed: list[LetterReceived] = []

        async def handle() -> None:
            parsed.append(parse_event(LetterReceived, event.value))
            await handle_letter(parsed[-1])

        await process_message(source, handle, publish_dead, letter=lambda: parsed[-1] if parsed else None)

    @app.agent(received)
    async def match(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            await process(event)

    return app
