"""I/O edge: one reply request, handled once: sent with bounded retries, then its copy filed in the Sent
folder. Each step's outcome is published before the next step begins (see `responder/outcomes.py`).

`publish` writes an outcome and returns when the broker has it; senders and folders are the SMTP and IMAP
edges (`SmtpPool`, `FilingQueue`), which do their blocking work in threads. Requests may be handled
concurrently: two requests for the same reply id are handled one after the other, so the second sees the
first's outcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from responder.compose import outgoing
from responder.errors import ImapError, SmtpError, TemplateError
from responder.imap import FiledCopy
from responder.outcomes import Done, File, Outcomes, Send
from responder.retry import MAX_WAIT_SECONDS, retry_delays
from responder.smtp import Accepted
from runtime.configfeed import LiveConfig
from schemas.config import Mailbox, MailroomConfig
from schemas.errors import UnknownMailboxError
from schemas.events import (
    Event,
    ReplyDeferred,
    ReplyFailed,
    ReplyFiled,
    ReplyFilingFailed,
    ReplyRequested,
    ReplySent,
    utcnow,
)
from schemas.ids import deterministic_id

__all__ = ["FILING_ATTEMPTS", "FILING_FIRST_RETRY_SECONDS", "Folder", "Publish", "Replies", "Sender"]

logger = logging.getLogger(__name__)

FILING_ATTEMPTS = 4
"""Tries to file a sent reply's copy when the IMAP server fails for a moment, 1 s, 2 s, 4 s apart."""
FILING_FIRST_RETRY_SECONDS = 1.0

T = TypeVar("T")
Failure = TypeVar("Failure", SmtpError, ImapError)


class Sender(Protocol):
    async def send(
        self, message: bytes, envelope_from: str, recipients: tuple[str, ...], smtputf8: bool = False
    ) -> Accepted: ...


class Folder(Protocol):
    async def file(self, message: bytes, message_id: str, when: datetime) -> FiledCopy: ...


Publish = Callable[[Event], Awaitable[None]]
"""Writes an outcome; returns when the broker has it."""


class _GaveUp(Exception):
    """A step failed for good; `error` is its last failure, `attempts` how many tries it took."""

    def __init__(self, error: SmtpError | ImapError, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


def _given(publish: Publish | None) -> Publish:
    if publish is None:
        raise TypeError("no publish given, neither to Replies nor to handle")
    return publish


def _round(request: ReplyRequested) -> tuple[str, ...]:
    """What sets the outcome ids of an operator's resend apart from the first round's (its request's
    time), so that downstream systems that keep one event per id see the new outcomes."""
    return (request.produced_at.isoformat(),) if request.resend else ()


def _outcome_id(request: ReplyRequested) -> str:
    return deterministic_id("reply-outcome", request.reply_id, *_round(request))


def _filing_id(sent: ReplySent) -> str:
    """One filing outcome per ReplySent (the same for every try at filing it)."""
    return deterministic_id("reply-filing", sent.event_id)


class Replies:
    """Sends and files replies as the configured mailboxes; remembers outcomes in `outcomes`."""

    def __init__(
        self,
        config: MailroomConfig | LiveConfig,
        outcomes: Outcomes,
        senders: Mapping[str, Sender],
        folders: Mapping[str, Folder],
        publish: Publish | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._live = config if isinstance(config, LiveConfig) else LiveConfig(config)
        self._outcomes = outcomes
        self._senders = senders
        self._folders = folders
        self._publish = publish
        self._sleep = sleep
        self._windows: dict[str, asyncio.Semaphore] = {}
        """Mailbox id -> the replies that may be sent and not yet recorded at once."""
        self._busy: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        """Reply id -> its lock and how many requests hold or wait for it."""

    async def handle(self, request: ReplyRequested, publish: Publish | None = None) -> None:
        """Sends and files the reply `request` asks for, unless its outcomes say that was done; each
        outcome goes to `publish` (default: the one given at construction)."""
        lock, users = self._busy.setdefault(request.reply_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                await self._handle(request, _given(publish or self._publish))
        finally:
            users[0] -= 1
            if not users[0]:
                del self._busy[request.reply_id]

    async def _handle(self, request: ReplyRequested, publish: Publish) -> None:
        step = self._outcomes.next_step(request.reply_id)
        if isinstance(step, Done) and request.resend and self._outcomes.reopen(request.reply_id):
            logger.info(
                "%s: reply %s failed before; sent again as asked", request.mailbox_id, request.reply_id
            )
            step = Send()
        if isinstance(step, Done):
            logger.info(
                "%s: reply %s already handled; not sent again (%s)",
                request.mailbox_id,
                request.reply_id,
                step.why,
            )
            return
        mailbox = self._live.config.mailbox(request.mailbox_id)
        if mailbox is None:
            raise UnknownMailboxError(f"mailbox {request.mailbox_id!r} is not in the configuration")
        if isinstance(step, File):
            logger.info("%s: reply %s was sent, not filed: filing it", request.mailbox_id, request.reply_id)
            await self._file(step.sent, publish)
            return
        sent = await self._send(request, mailbox, publish, step.deferred)
        if sent is not None:
            await self._file(sent, publish)

    async def _send(
        self, request: ReplyRequested, mailbox: Mailbox, publish: Publish, before: ReplyDeferred | None
    ) -> ReplySent | None:
        """Sends the reply with the quick tries; a reply that still fails for a moment is deferred (tried
        again later, until `smtp.retry_hours` after its first failure), else it fails.

        At most `smtp.connections` replies of a mailbox are between the server's acceptance and their
        ReplySent on the broker at any time: a crash can send only those twice."""
        window = self._windows.get(mailbox.id)
        if window is None:
            window = self._windows[mailbox.id] = asyncio.Semaphore(mailbox.smtp.connections)
        async with window:
            return await self._send_in_window(request, mailbox, publish, before)

    async def _send_in_window(
        self, request: ReplyRequested, mailbox: Mailbox, publish: Publish, before: ReplyDeferred | None
    ) -> ReplySent | None:
        try:
            out = outgoing(request, mailbox, utcnow())
        except (TemplateError, ValueError) as exc:  # ValueError: the email package refused a header value
            await self._failed(request, f"cannot build the reply: {exc}", None, 0, publish)
            return None
        smtp = mailbox.smtp
        sender = self._senders[mailbox.id]
        try:
            accepted, attempts = await self._tries(
                lambda: sender.send(out.data, out.envelope_from, out.recipients, out.smtputf8),
                SmtpError,
                retry_delays(smtp.attempts, smtp.first_retry_seconds),
                f"{mailbox.id}: reply {request.reply_id}",
            )
        except _GaveUp as gave_up:
            assert isinstance(gave_up.error, SmtpError)
            error, now = gave_up.error, utcnow()
            attempts = gave_up.attempts + (before.attempts if before else 0)
            first = before.first_failed_at if before else now
            if error.retriable and now < first + timedelta(hours=smtp.retry_hours):
                await self._deferred(request, error, attempts, first, now, smtp.first_retry_seconds, publish)
                return None
            reason = (
                str(error)
                if before is None
                else f"{error} (tried {attempts} times since {first:%Y-%m-%d %H:%M} UTC)"
            )
            await self._failed(request, reason, error, attempts, publish)
            return None
        attempts += before.attempts if before else 0
        sent = ReplySent(
            event_id=_outcome_id(request),
            occurred_at=utcnow(),
            reply_id=request.reply_id,
            mailbox_id=mailbox.id,
            message_id=out.message_id,
            to=accepted.recipients,
            smtp_code=accepted.code,
            smtp_text=accepted.text,
            attempts=attempts,
            message=out.data,
        )
        await publish(sent)  # before filing: a crash from here on files the copy, never resends
        self._outcomes.sent(sent)
        logger.info(
            "%s: %s reply %s sent to %s (in reply to %s)%s: %d %s",
            mailbox.id,
            request.kind,
            request.reply_id,
            ", ".join(accepted.recipients),
            request.in_reply_to,
            f", written by {request.author}" if request.author else "",
            accepted.code,
            accepted.text,
        )
        return sent

    async def _deferred(
        self,
        request: ReplyRequested,
        error: SmtpError,
        attempts: int,
        first: datetime,
        now: datetime,
        first_retry_seconds: float,
        publish: Publish,
    ) -> None:
        wait = min(first_retry_seconds * 2 ** min(attempts, 20), MAX_WAIT_SECONDS)
        deferred = ReplyDeferred(
            event_id=deterministic_id("reply-deferred", request.reply_id, attempts, *_round(request)),
            occurred_at=now,
            reply_id=request.reply_id,
            mailbox_id=request.mailbox_id,
            reason=str(error),
            smtp_code=error.code,
            smtp_text=error.text or None,
            attempts=attempts,
            first_failed_at=first,
            retry_at=now + timedelta(seconds=wait),
        )
        logger.warning(
            "%s: reply %s deferred after %d tries, again in %.0f s: %s",
            request.mailbox_id,
            request.reply_id,
            attempts,
            wait,
            error,
        )
        await publish(deferred)
        self._outcomes.defer(deferred)

    async def _failed(
        self, request: ReplyRequested, reason: str, error: SmtpError | None, attempts: int, publish: Publish
    ) -> None:
        logger.warning("%s: reply %s failed: %s", request.mailbox_id, request.reply_id, reason)
        await publish(
            ReplyFailed(
                event_id=_outcome_id(request),
                occurred_at=utcnow(),
                reply_id=request.reply_id,
                mailbox_id=request.mailbox_id,
                reason=reason,
                smtp_code=error.code if error else None,
                smtp_text=(error.text or None) if error else None,
                retriable=error.retriable if error else False,
                attempts=attempts,
            )
        )
        self._outcomes.finished(request.reply_id, ReplyFailed.__name__)

    async def _file(self, sent: ReplySent, publish: Publish) -> None:
        folder = self._folders[sent.mailbox_id]
        where = f"{sent.mailbox_id}: copy of reply {sent.reply_id}"
        outcome: ReplyFiled | ReplyFilingFailed
        try:
            copy, attempts = await self._tries(
                lambda: folder.file(sent.message, sent.message_id, sent.occurred_at),
                ImapError,
                retry_delays(FILING_ATTEMPTS, FILING_FIRST_RETRY_SECONDS),
                where,
            )
            outcome = ReplyFiled(
                event_id=_filing_id(sent),
                occurred_at=utcnow(),
                reply_id=sent.reply_id,
                mailbox_id=sent.mailbox_id,
                message_id=sent.message_id,
                folder=copy.folder,
                uidvalidity=copy.uidvalidity,
                uid=copy.uid,
                already_there=not copy.appended,
                attempts=attempts,
            )
            logger.info("%s filed in %r (uid %s)", where, copy.folder, copy.uid)
        except _GaveUp as gave_up:
            logger.warning("%s not filed: %s", where, gave_up.error)
            outcome = ReplyFilingFailed(
                event_id=_filing_id(sent),
                occurred_at=utcnow(),
                reply_id=sent.reply_id,
                mailbox_id=sent.mailbox_id,
                message_id=sent.message_id,
                reason=str(gave_up.error),
                retriable=gave_up.error.retriable,
                attempts=gave_up.attempts,
            )
        await publish(outcome)
        self._outcomes.finished(sent.reply_id, outcome.event_type)

    async def _tries(
        self, call: Callable[[], Awaitable[T]], failure: type[Failure], delays: tuple[float, ...], where: str
    ) -> tuple[T, int]:
        """Awaits `call` until it succeeds; retriable failures are tried again after each of `delays`.
        _GaveUp on a failure that is not retriable, or when the tries are used up."""
        attempts = len(delays) + 1
        for attempt in range(1, attempts + 1):
            try:
                return await call(), attempt
            except failure as exc:
                if not exc.retriable or attempt == attempts:
                    raise _GaveUp(exc, attempt) from exc
                wait = delays[attempt - 1]
                logger.warning(
                    "%s: %s; attempt %d of %d, again in %.1f s", where, exc, attempt, attempts, wait
                )
                await self._sleep(wait)
        raise AssertionError("unreachable")
