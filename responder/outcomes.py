"""Pure: what became of each reply, folded from the outcomes topic, and what is left to do for a request.

A reply goes through two steps, each recorded on the outcomes topic before the next begins: sending
(ReplySent or ReplyFailed) and filing the copy in the Sent folder (ReplyFiled or ReplyFilingFailed). A
reply sent but not filed (the worker stopped in between) is filed from the bytes its ReplySent carries;
it is never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from runtime.ledger import field_of
from schemas.errors import EventError
from schemas.events import (
    ReplyDeferred,
    ReplyFailed,
    ReplyFiled,
    ReplyFilingFailed,
    ReplySent,
    event_type_of,
    parse_event,
)

__all__ = ["Done", "File", "Outcomes", "Send", "Step"]


@dataclass(frozen=True)
class Send:
    """Not sent yet: build the reply, send it, then file it. `deferred`: the tries so far failed for a
    moment (the reply is being tried again)."""

    deferred: ReplyDeferred | None = None


@dataclass(frozen=True)
class File:
    """Sent, not filed: file the bytes `sent.message`, do not send."""

    sent: ReplySent


@dataclass(frozen=True)
class Done:
    """Nothing left to do; `why` says what happened."""

    why: str


Step = Send | File | Done

_UNREADABLE = "unreadable ReplySent"
_LEGACY = "ReplySent without bytes"
_FINAL = {
    ReplyFailed.__name__: "its sending failed",
    ReplyFiled.__name__: "sent and filed",
    ReplyFilingFailed.__name__: "sent; filing its copy failed",
    _UNREADABLE: "sent; its ReplySent cannot be read, so nothing is filed",
    _LEGACY: "sent before mailroom filed copies",
}


class Outcomes:
    """Reply ids with a final outcome, and the ReplySent of replies sent but not yet filed (only these
    keep their bytes in memory)."""

    def __init__(self) -> None:
        self._done: dict[str, str] = {}
        self._unfiled: dict[str, ReplySent] = {}
        self._deferred: dict[str, ReplyDeferred] = {}

    def fold(self, data: bytes) -> None:
        """Takes one message of the outcomes topic, oldest first (the topic is keyed by reply id, so a
        reply's ReplySent comes before its filing outcome)."""
        kind = event_type_of(data)
        if kind == ReplySent.__name__:
            try:
                self.sent(parse_event(ReplySent, data))
                return
            except EventError:  # unreadable, but sent: never send it again
                kind = _UNREADABLE
        if kind == ReplyDeferred.__name__:
            try:
                self.defer(parse_event(ReplyDeferred, data))
                return
            except EventError:  # unreadable: the request, redelivered or resent, is tried again
                return
        reply = field_of(data, "reply_id")
        if reply is not None and kind in _FINAL:
            self.finished(reply, _FINAL[kind])

    def defer(self, event: ReplyDeferred) -> None:
        """The reply failed for a moment on every quick try; it is tried again at `event.retry_at`."""
        if event.reply_id not in self._done and event.reply_id not in self._unfiled:
            self._deferred[event.reply_id] = event

    def due(self, now: datetime) -> list[ReplyDeferred]:
        """The deferred replies whose time to try again has come, oldest first."""
        return sorted((d for d in self._deferred.values() if d.retry_at <= now), key=lambda d: d.retry_at)

    def reopen(self, reply_id: str) -> bool:
        """An operator's resend: a reply whose sending failed for good may be sent again (True); one sent
        or still being tried is left as it is (False)."""
        if self._done.get(reply_id) != _FINAL[ReplyFailed.__name__]:
            return False
        del self._done[reply_id]
        return True

    def sent(self, event: ReplySent) -> None:
        if event.reply_id in self._done:
            return
        self._deferred.pop(event.reply_id, None)
        if not event.message:  # written before mailroom filed copies: nothing to file
            self.finished(event.reply_id, _LEGACY)
            return
        self._unfiled[event.reply_id] = event

    def finished(self, reply_id: str, outcome: str) -> None:
        """The reply has its final outcome, named by its event type (ReplyFailed, ReplyFiled, ...)."""
        self._unfiled.pop(reply_id, None)
        self._deferred.pop(reply_id, None)
        self._done[reply_id] = _FINAL.get(outcome, outcome)

    def next_step(self, reply_id: str) -> Step:
        if reply_id in self._done:
            return Done(self._done[reply_id])
        unfiled = self._unfiled.get(reply_id)
        return File(unfiled) if unfiled is not None else Send(self._deferred.get(reply_id))

    def clear(self) -> None:
        self._done.clear()
        self._unfiled.clear()
        self._deferred.clear()

    def __len__(self) -> int:
        return len(self._done) + len(self._unfiled) + len(self._deferred)
