"""I/O edge: the responder's stream handler. Sends each requested reply at most once and files its copy in
the mailbox's Sent folder.

The responder's ledger holds the final outcome of every reply (ReplyFailed, ReplyFiled, ReplyFilingFailed)
and, read back after a crash, the ReplySent of a reply sent but not yet filed: a reply id with an outcome
is never sent again, also when the requests are consumed again from the start, and a reply sent but not
filed is filed from the bytes its ReplySent carries. The one window left: a
crash after the SMTP server accepted a reply and before its ReplySent was written; the reply's
deterministic Message-ID lets the receiver drop that duplicate (and the Sent folder keeps one copy).

Up to CONCURRENCY requests are handled at once: a mailbox's replies go out over its pool of SMTP
connections and their copies are filed in rounds over its IMAP connection, so neither one slow server nor
the round trips of one reply hold up the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from responder.delivery import Replies
from responder.imap import FilingQueue, SentFolder
from responder.outcomes import Outcomes
from responder.render import check_templates
from responder.smtp import SmtpPool
from runtime import logs
from runtime.configfeed import LiveConfig
from runtime.ledger import Fact, Ledger, field_of
from runtime.policy import Source
from runtime.settings import WorkerSettings
from runtime.stream import Emitter, Output, StreamWorker
from schemas import topics
from schemas.config import Mailbox, MailroomConfig
from schemas.events import (
    Event,
    ReplyDeferred,
    ReplyFailed,
    ReplyFiled,
    ReplyFilingFailed,
    ReplyRequested,
    ReplySent,
    event_type_of,
    parse_event,
    utcnow,
)

__all__ = ["create_worker"]

logger = logging.getLogger(__name__)

STAGE = "responder"
FINAL_OUTCOMES = frozenset({ReplyFailed.__name__, ReplyFiled.__name__, ReplyFilingFailed.__name__})
CONCURRENCY = 64
"""Requests handled at once (of one batch)."""


T = TypeVar("T")


class _PerMailbox(Mapping[str, T]):
    """A sender (or Sent folder) per mailbox, made when first needed and made anew when the mailbox's
    settings change; the ones replaced are closed with the rest at the end (a reply may still use one)."""

    def __init__(
        self, live: LiveConfig, make: Callable[[Mailbox], T], settings_of: Callable[[Mailbox], object]
    ):
        self._live, self._make, self._settings_of = live, make, settings_of
        self._made: dict[str, tuple[object, T]] = {}
        self._replaced: list[T] = []

    def __getitem__(self, mailbox_id: str) -> T:
        box = self._live.config.mailbox(mailbox_id)
        if box is None:
            raise KeyError(mailbox_id)
        settings = self._settings_of(box)
        hit = self._made.get(mailbox_id)
        if hit is not None and (hit[0] is settings or hit[0] == settings):
            return hit[1]
        if hit is not None:
            self._replaced.append(hit[1])
        made = self._make(box)
        self._made[mailbox_id] = (settings, made)
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._made)

    def __len__(self) -> int:
        return len(self._made)

    def every(self) -> list[T]:
        return [made for _, made in self._made.values()] + self._replaced


def create_worker(settings: WorkerSettings, config: MailroomConfig | LiveConfig) -> StreamWorker:
    live = config if isinstance(config, LiveConfig) else LiveConfig(config)
    check_templates(live.config)
    outcomes = Outcomes()
    requests_at: dict[str, tuple[int, int]] = {}
    """Reply id -> (partition, offset) of the request of a deferred reply: it is put back there when due."""
    requeued: set[str] = set()

    def fold_fact(fact: Fact) -> None:
        if fact.get("t") == "final":
            outcomes.finished(str(fact["reply"]), str(fact["outcome"]))
            requests_at.pop(str(fact["reply"]), None)
        elif fact.get("t") in ("sent", "deferred"):
            outcomes.fold(str(fact["event"]).encode())
            if fact.get("t") == "deferred" and "at" in fact:
                requests_at[str(fact["reply"])] = (int(fact["at"][0]), int(fact["at"][1]))

    def forget() -> None:
        outcomes.clear()
        requests_at.clear()
        requeued.clear()

    def fold_output(spec: topics.TopicSpec, data: bytes) -> Fact | None:
        outcomes.fold(data)
        kind = event_type_of(data)
        if kind in FINAL_OUTCOMES:
            return {"t": "final", "reply": field_of(data, "reply_id"), "outcome": kind}
        # Only in the tail a crash left: a reply sent, perhaps not yet filed (the bytes to file it), or one
        # deferred (its request, not committed, comes again).
        if kind == ReplySent.__name__:
            return {"t": "sent", "event": data.decode()}
        if kind == ReplyDeferred.__name__:
            return {"t": "deferred", "reply": field_of(data, "reply_id"), "event": data.decode()}
        return None

    ledger = Ledger(settings.kafka, STAGE, [topics.REPLY_OUTCOMES], fold_fact, fold_output, forget)
    senders = _PerMailbox(live, lambda box: SmtpPool(box.smtp), lambda box: box.smtp)
    folders = _PerMailbox(live, lambda box: FilingQueue(SentFolder(box.imap)), lambda box: box.imap)

    replies = Replies(live, outcomes, senders, folders)

    async def handle(source: Source, out: Emitter) -> None:
        async def publish(event: Event) -> None:
            reply_id = getattr(event, "reply_id", None)
            assert isinstance(reply_id, str), f"{type(event).__name__} is not a reply outcome"
            kind = type(event).__name__
            requeued.discard(reply_id)
            if kind in FINAL_OUTCOMES:
                # The last step: sent with the message's other outputs, on the broker before its commit.
                out.emit(topics.REPLY_OUTCOMES, reply_id, event)
                out.remember(reply_id, {"t": "final", "reply": reply_id, "outcome": kind})
                requests_at.pop(reply_id, None)
            elif isinstance(event, ReplyDeferred):
                out.emit(topics.REPLY_OUTCOMES, reply_id, event)
                at = (source.partition, source.offset)
                out.remember(
                    reply_id,
                    {"t": "deferred", "reply": reply_id, "event": event.to_bytes().decode(), "at": at},
                )
                requests_at[reply_id] = at
            else:
                # ReplySent is on the broker before the copy is filed: a crash then files, never resends.
                await out.publish(topics.REPLY_OUTCOMES, reply_id, event)

        request = parse_event(ReplyRequested, source.value)
        logs.note(reply_id=request.reply_id)
        await replies.handle(request, publish)

    async def retry_due() -> None:
        """Puts the request of each deferred reply whose time has come back on its partition."""
        for deferred in outcomes.due(utcnow()):
            at = requests_at.get(deferred.reply_id)
            if at is None or deferred.reply_id in requeued:
                continue
            data = await asyncio.to_thread(ledger.fetch, topics.REPLIES_REQUESTED, *at)
            if data is None:
                logger.error(
                    "%s: the request of deferred reply %s is gone", deferred.mailbox_id, deferred.reply_id
                )
                requests_at.pop(deferred.reply_id, None)
                continue
            await worker.publish_now(Output(topics.REPLIES_REQUESTED, deferred.mailbox_id, data, at[0]))
            requeued.add(deferred.reply_id)
            logger.info("%s: deferred reply %s is tried again", deferred.mailbox_id, deferred.reply_id)

    def close() -> None:
        for pool in senders.every():
            pool.close()
        for queue in folders.every():
            queue.close()

    worker = StreamWorker(
        STAGE,
        settings.kafka,
        topics.REPLIES_REQUESTED,
        handle,
        ledger,
        concurrency=CONCURRENCY,
        on_close=close,
        every_second=retry_due,
    )
    return worker
