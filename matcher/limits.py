"""Pure: how often a mailbox has auto-replied, and whether another auto-reply is allowed.

Counted in answered letters, not replies: the replies one letter gets under `all_matching` are one answer.
- per thread: letters of the thread already answered (default: one);
- per recipient: letters answered for the same address in the hour and the day up to this letter.
A letter's own earlier replies are left out, so deciding a letter again (a replay) gives the same answer
as the first time; times are the letters' reception times, never the clock.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.config import AutoReplyLimits
from schemas.events import ReplyRequested

__all__ = ["ReplyHistory"]

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


@dataclass
class ReplyHistory:
    """The auto-replies requested so far, by (mailbox, thread) and by (mailbox, recipient)."""

    _by_thread: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    _by_recipient: dict[tuple[str, str], dict[str, datetime]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def remember(self, reply: ReplyRequested) -> None:
        """Records an auto-reply request; `occurred_at` is when its letter was received."""
        if reply.kind == "auto":
            self.note(
                reply.mailbox_id,
                reply.thread_id,
                reply.in_reply_to,
                [a.address for a in reply.to],
                reply.occurred_at,
            )

    def note(
        self, mailbox_id: str, thread_id: str, letter: str, recipients: list[str], received_at: datetime
    ) -> None:
        """Records that the letter `letter` (a Message-ID) of the thread was auto-answered to `recipients`."""
        self._by_thread[(mailbox_id, thread_id)].add(letter)
        for recipient in recipients:
            self._by_recipient[(mailbox_id, recipient.lower())][letter] = received_at

    def clear(self) -> None:
        self._by_thread.clear()
        self._by_recipient.clear()

    def limit(
        self,
        mailbox_id: str,
        limits: AutoReplyLimits,
        thread_id: str,
        recipient: str,
        message_id: str,
        received_at: datetime,
    ) -> str | None:
        """Why one more auto-reply to the letter `message_id` is not allowed, or None."""
        answered = self._by_thread.get((mailbox_id, thread_id), set()) - {message_id}
        if len(answered) >= limits.per_thread:
            return f"{len(answered)} letter(s) of this thread already answered (limit {limits.per_thread})"
        times = [
            at
            for letter, at in self._by_recipient.get((mailbox_id, recipient.lower()), {}).items()
            if letter != message_id and at <= received_at
        ]
        for window, limit, name in (
            (_HOUR, limits.per_sender_per_hour, "hour"),
            (_DAY, limits.per_sender_per_day, "day"),
        ):
            recent = sum(1 for at in times if received_at - at < window)
            if recent >= limit:
                return f"{recent} letter(s) from {recipient} answered in the last {name} (limit {limit})"
        return None
