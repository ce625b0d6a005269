"""I/O edge: the responder's faust app. Renders and sends each requested reply at most once.

The responder's ledger is the outcomes topic: it reads back every ReplySent and ReplyFailed, so a reply
id with an outcome is never sent again, also when the requests are consumed again from the start. The
one window left: a crash after the SMTP server accepted a reply and before its outcome was written; the
reply's deterministic Message-ID lets the receiver drop that duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from responder.compose import message_for
from responder.errors import SmtpError, TemplateError
from responder.render import check_templates
from responder.smtp import SmtpSender
from schemas import topics
from schemas.config import MailroomConfig
from schemas.errors import UnknownMailboxError
from schemas.events import (
    DeadLetter,
    Event,
    ReplyFailed,
    ReplyRequested,
    ReplySent,
    parse_event,
    utcnow,
)
from schemas.ids import deterministic_id, reply_message_id
from schemas.ledger import TopicLedger, field_of
from schemas.policy import Source, process_message
from schemas.settings import WorkerSettings, faust_app_options

__all__ = ["SMTP_ATTEMPTS", "create_app"]

logger = logging.getLogger(__name__)

STAGE = "responder"
SMTP_ATTEMPTS = 4
"""Tries per reply for retriable SMTP errors (4xx, dropped connections), 1 s, 2 s, 4 s apart."""


def create_app(settings: WorkerSettings, config: MailroomConfig) -> faust.App:
    check_templates(config)
    app = faust.App(**faust_app_options(STAGE, settings))
    requested = app.topic(settings.kafka.topic(topics.REPLIES_REQUESTED), key_type=bytes, value_type=bytes)
    out = {
        spec.name: app.topic(settings.kafka.topic(spec), key_type=bytes, value_type=bytes)
        for spec in (topics.REPLY_OUTCOMES, topics.DEAD_LETTERS)
    }
    handled: set[str] = set()

    def remember(spec: topics.TopicSpec, data: bytes) -> None:
        outcome_reply = field_of(data, "reply_id")
        if outcome_reply is not None:
            handled.add(outcome_reply)

    ledger = TopicLedger(settings.kafka, [topics.REPLY_OUTCOMES], remember)
    ledger.follow(app)
    senders = {box.id: SmtpSender(box.smtp) for box in config.mailboxes}

    async def send(spec: topics.TopicSpec, key: str, event: Event) -> None:
        sent = await out[spec.name].send(key=key.encode(), value=event.to_bytes())
        await sent  # wait for the broker: the offset is committed only after this returns

    async def finish(request: ReplyRequested, outcome: ReplySent | ReplyFailed) -> None:
        await send(topics.REPLY_OUTCOMES, request.reply_id, outcome)
        handled.add(request.reply_id)

    def failed(request: ReplyRequested, reason: str, error: SmtpError | None = None) -> ReplyFailed:
        logger.warning("%s: reply %s failed: %s", request.mailbox_id, request.reply_id, reason)
        return ReplyFailed(
            event_id=deterministic_id("reply-outcome", request.reply_id),
            occurred_at=utcnow(),
            reply_id=request.reply_id,
            mailbox_id=request.mailbox_id,
            reason=reason,
            smtp_code=error.code if error else None,
            retriable=error.retriable if error else False,
        )

    async def deliver(sender: SmtpSender, message: Any, envelope_from: str, to: list[str]) -> None:
        for attempt in range(1, SMTP_ATTEMPTS + 1):
            try:
                await asyncio.to_thread(sender.send, message, envelope_from, to)
                return
            except SmtpError as exc:
                if not exc.retriable or attempt == SMTP_ATTEMPTS:
                    raise
                logger.warning("%s; attempt %d of %d", exc, attempt, SMTP_ATTEMPTS)
                await asyncio.sleep(2 ** (attempt - 1))

    async def handle_request(request: ReplyRequested) -> None:
        await ledger.ensure_current()
        if request.reply_id in handled:
            logger.info("%s: reply %s already handled; not sent again", request.mailbox_id, request.reply_id)
            return
        mailbox = config.mailbox(request.mailbox_id)
        if mailbox is None:
            raise UnknownMailboxError(f"mailbox {request.mailbox_id!r} is not in the configuration")
        now = utcnow()
        message_id = reply_message_id(request.reply_id, mailbox.email)
        try:
            message = message_for(request, mailbox, now)
        except (TemplateError, ValueError) as exc:  # ValueError: the email package refused a header value
            await finish(request, failed(request, f"cannot build the reply: {exc}"))
            return
        recipients = [a.address for a in request.to]
        try:
            await deliver(senders[mailbox.id], message, mailbox.email, recipients)
        except SmtpError as exc:
            await finish(request, failed(request, str(exc), exc))
            return
        await finish(
            request,
            ReplySent(
                event_id=deterministic_id("reply-outcome", request.reply_id),
                occurred_at=utcnow(),
                reply_id=request.reply_id,
                mailbox_id=mailbox.id,
                message_id=message_id,
                to=tuple(recipients),
            ),
        )
        logger.info(
            "%s: reply %s sent to %s (in reply to %s)",
            mailbox.id,
            request.reply_id,
            ", ".join(recipients),
            request.in_reply_to,
        )

    async def publish_dead(dead: DeadLetter) -> None:
        await send(topics.DEAD_LETTERS, dead.mailbox_id or dead.source_key or "", dead)

    async def process(event: faust.EventT[Any]) -> None:
        msg = event.message
        source = Source(STAGE, msg.topic, msg.partition, msg.offset, event.key, event.value)
        await process_message(
            source, lambda: handle_request(parse_event(ReplyRequested, event.value)), publish_dead
        )

    @app.agent(requested)
    async def respond(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            await process(event)

    return app
