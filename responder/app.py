"""I/O edge: the responder's stream handler. Sends each requested reply at most once and files its copy in
the mailbox's Sent folder.

The responder's ledger is the outcomes topic: it reads back every ReplySent, ReplyFailed, ReplyFiled and
ReplyFilingFailed, so a reply id with an outcome is never sent again, also when the requests are consumed
again from the start, and a reply sent but not filed is filed from its ReplySent. The one window left: a
crash after the SMTP server accepted a reply and before its ReplySent was written; the reply's
deterministic Message-ID lets the receiver drop that duplicate (and the Sent folder keeps one copy).

Requests of different mailboxes are handled concurrently (each mailbox's in order, over its own SMTP and
IMAP connections), so one slow server does not hold up the other mailboxes.
"""

from __future__ import annotations

import logging

from responder.delivery import Replies
from responder.imap import SentFolder
from responder.outcomes import Outcomes
from responder.render import check_templates
from responder.smtp import SmtpSender
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


def create_worker(settings: WorkerSettings, config: MailroomConfig) -> StreamWorker:
    check_templates(config)
    outcomes = Outcomes()
    ledger = TopicLedger(
        settings.kafka, [topics.REPLY_OUTCOMES], lambda spec, data: outcomes.fold(data), outcomes.clear
    )
    senders = {box.id: SmtpSender(box.smtp) for box in config.mailboxes}
    folders = {box.id: SentFolder(box.imap) for box in config.mailboxes}

    async def handle(source: Source, out: Emitter) -> None:
        request = parse_event(ReplyRequested, source.value)

        async def publish(event: Event) -> None:
            reply_id = getattr(event, "reply_id", None)
            assert isinstance(reply_id, str), f"{type(event).__name__} is not a reply outcome"
            # Each step's outcome is on the broker before the next step begins (see outcomes.py).
            await out.publish(topics.REPLY_OUTCOMES, reply_id, event)

        await Replies(config, outcomes, senders, folders, publish).handle(request)

    return StreamWorker(STAGE, settings.kafka, topics.REPLIES_REQUESTED, handle, ledger, concurrent_keys=True)
