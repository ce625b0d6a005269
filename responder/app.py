"""I/O edge: the responder's stream handler. Sends each requested reply at most once and files its copy in
the mailbox's Sent folder.

The responder's ledger is the outcomes topic: it reads back every ReplySent, ReplyFailed, ReplyFiled and
ReplyFilingFailed, so a reply id with an outcome is never sent again, also when the requests are consumed
again from the start, and a reply sent but not filed is filed from its ReplySent. The one window left: a
crash after the SMTP server accepted a reply and before its ReplySent was written; the reply's
deterministic Message-ID lets the receiver drop that duplicate (and the Sent folder keeps one copy).

Up to CONCURRENCY requests are handled at once: a mailbox's replies go out over its pool of SMTP
connections and their copies are filed in rounds over its IMAP connection, so neither one slow server nor
the round trips of one reply hold up the others.
"""

from __future__ import annotations

import logging

from responder.delivery import Replies
from responder.imap import FilingQueue, SentFolder
from responder.outcomes import Outcomes
from responder.render import check_templates
from responder.smtp import SmtpPool
from runtime.ledger import TopicLedger
from runtime.policy import Source
from runtime.settings import WorkerSettings
from runtime.stream import Emitter, StreamWorker
from schemas import topics
from schemas.config import MailroomConfig
from schemas.events import Event, ReplyRequested, parse_event

__all__ = ["create_worker"]

logger = logging.getLogger(__name__)

STAGE = "responder"
CONCURRENCY = 64
"""Requests handled at once (of one batch)."""


def create_worker(settings: WorkerSettings, config: MailroomConfig) -> StreamWorker:
    check_templates(config)
    outcomes = Outcomes()
    ledger = TopicLedger(
        settings.kafka, [topics.REPLY_OUTCOMES], lambda spec, data: outcomes.fold(data), outcomes.clear
    )
    senders = {box.id: SmtpPool(box.smtp) for box in config.mailboxes}
    folders = {box.id: FilingQueue(SentFolder(box.imap)) for box in config.mailboxes}

    async def publish(event: Event) -> None:
        reply_id = getattr(event, "reply_id", None)
        assert isinstance(reply_id, str), f"{type(event).__name__} is not a reply outcome"
        # Each step's outcome is on the broker before the next step begins (see outcomes.py).
        await worker.publish(topics.REPLY_OUTCOMES, reply_id, event)

    replies = Replies(config, outcomes, senders, folders, publish)

    async def handle(source: Source, out: Emitter) -> None:
        await replies.handle(parse_event(ReplyRequested, source.value))

    def close() -> None:
        for pool in senders.values():
            pool.close()
        for queue in folders.values():
            queue.close()

    worker = StreamWorker(
        STAGE,
        settings.kafka,
        topics.REPLIES_REQUESTED,
        handle,
        ledger,
        concurrency=CONCURRENCY,
        on_close=close,
    )
    return worker
