"""I/O edge: the responder's faust app. Sends each requested reply at most once and files its copy in the
mailbox's Sent folder.

The responder's ledger is the outcomes topic: it reads back every ReplySent, ReplyFailed, ReplyFiled and
ReplyFilingFailed, so a reply id with an outcome is never sent again, also when the requests are consumed
again from the start, and a reply sent but not filed is filed from its ReplySent. The one window left: a
crash after the SMTP server accepted a reply and before its ReplySent was written; the reply's
deterministic Message-ID lets the receiver drop that duplicate (and the Sent folder keeps one copy).
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from responder.delivery import Replies
from responder.imap import SentFolder
from responder.outcomes import Outcomes
from responder.render import check_templates
from responder.smtp import SmtpSender
from schemas import topics
from schemas.config import MailroomConfig
from schemas.events import DeadLetter, Event, ReplyRequested, parse_event
from schemas.ledger import TopicLedger
from schemas.policy import Source, process_message
from schemas.settings import WorkerSettings, faust_app_options

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

STAGE = "responder"


def create_app(settings: WorkerSettings, config: MailroomConfig) -> faust.App:
    check_templates(config)
    app = faust.App(**faust_app_options(STAGE, settings))
    requested = app.topic(settings.kafka.topic(topics.REPLIES_REQUESTED), key_type=bytes, value_type=bytes)
    out = {
        spec.name: app.topic(settings.kafka.topic(spec), key_type=bytes, value_type=bytes)
        for spec in (topics.REPLY_OUTCOMES, topics.DEAD_LETTERS)
    }
    outcomes = Outcomes()
    ledger = TopicLedger(settings.kafka, [topics.REPLY_OUTCOMES], lambda spec, data: outcomes.fold(data))
    ledger.follow(app)

    async def send(spec: topics.TopicSpec, key: str, event: Event) -> None:
        sent = await out[spec.name].send(key=key.encode(), value=event.to_bytes())
        await sent  # wait for the broker: the offset is committed only after this returns

    async def publish_outcome(event: Event) -> None:
        reply_id = getattr(event, "reply_id", None)
        assert isinstance(reply_id, str), f"{type(event).__name__} is not a reply outcome"
        await send(topics.REPLY_OUTCOMES, reply_id, event)

    replies = Replies(
        config,
        outcomes,
        senders={box.id: SmtpSender(box.smtp) for box in config.mailboxes},
        folders={box.id: SentFolder(box.imap) for box in config.mailboxes},
        publish=publish_outcome,
    )

    async def handle_request(data: bytes | None) -> None:
        request = parse_event(ReplyRequested, data)
        await ledger.ensure_current()
        await replies.handle(request)

    async def publish_dead(dead: DeadLetter) -> None:
        await send(topics.DEAD_LETTERS, dead.mailbox_id or dead.source_key or "", dead)

    async def process(event: faust.EventT[Any]) -> None:
        msg = event.message
        source = Source(STAGE, msg.topic, msg.partition, msg.offset, event.key, event.value)
        await process_message(source, lambda: handle_request(event.value), publish_dead)

    @app.agent(requested)
    async def respond(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            await process(event)

    return app
