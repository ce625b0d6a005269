"""Pure: decides which thread a letter belongs to from its Message-ID, In-Reply-To and References.

`known` answers "which thread does this Message-ID belong to?" for the letter's mailbox (the matcher backs
it with a table). A letter joins the thread of the nearest known ancestor: In-Reply-To first, then
References from the newest to the oldest; with none known it starts a thread of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["ThreadPlace", "place_in_thread"]


@dataclass(frozen=True)
class ThreadPlace:
    thread_id: str
    """The Message-ID of the thread's first letter."""
    starts_thread: bool


def place_in_thread(
    message_id: str,
    in_reply_to: Sequence[str],
    references: Sequence[str],
    known: Callable[[str], str | None],
) -> ThreadPlace:
    own = known(message_id)
    if own is not None:
        # Seen before (a replay or the same letter in another folder): the same answer as the first time.
        return ThreadPlace(own, starts_thread=own == message_id)
    for ancestor in (*in_reply_to, *reversed(references)):
        if ancestor == message_id:
            continue
        thread = known(ancestor)
        if thread is not None:
            return ThreadPlace(thread, starts_thread=False)
    return ThreadPlace(message_id, starts_thread=True)
