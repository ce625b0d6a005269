"""Pure: decides which thread a letter belongs to, and keeps the index that answers it.

A thread's id is the oldest Message-ID its conversation names: the first References entry of the first
letter mailroom sees (else its In-Reply-To, else its own id). So a reply that arrives before the letter
it answers still names the thread the original will join, and both end in one thread whatever the
order. A letter joins the thread of the nearest known id it names (In-Reply-To first, then References
from the newest); every id a letter names is remembered as part of its thread.

`starts_thread` is true for the first letter of a thread mailroom sees (the one a lead or case is made
from), and stays true for that letter on a replay or a second copy of it: the answer depends on what the
index holds, and the index is rebuilt from the matcher's own output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.events import LetterThreaded, ReplyRequested
from schemas.ids import reply_message_id

__all__ = ["ThreadIndex", "ThreadPlace"]


@dataclass(frozen=True)
class ThreadPlace:
    thread_id: str
    starts_thread: bool


@dataclass
class ThreadIndex:
    """(mailbox, Message-ID) -> thread, and (mailbox, thread) -> the Message-ID of its first letter."""

    _threads: dict[tuple[str, str], str] = field(default_factory=dict)
    _starters: dict[tuple[str, str], str] = field(default_factory=dict)
    _placed: dict[tuple[str, str], str] = field(default_factory=dict)
    """The letters and replies remembered themselves (not only named by others), with their fingerprint."""

    def place(
        self, mailbox_id: str, message_id: str, in_reply_to: Iterable[str], references: Iterable[str]
    ) -> ThreadPlace:
        parents, refs = list(in_reply_to), list(references)
        own = self._threads.get((mailbox_id, message_id))
        if own is not None:
            return ThreadPlace(own, self._starters.get((mailbox_id, own)) == message_id)
        for ancestor in (*parents, *reversed(refs)):
            thread = self._threads.get((mailbox_id, ancestor))
            if thread is not None and ancestor != message_id:
                return ThreadPlace(thread, starts_thread=False)
        root = refs[0] if refs else parents[0] if parents else message_id
        return ThreadPlace(root, starts_thread=True)

    def remember(
        self,
        mailbox_id: str,
        message_id: str,
        thread_id: str,
        starts_thread: bool,
        named: Iterable[str] = (),
        fingerprint: str = "",
    ) -> None:
        """Records a placed letter (or a reply mailroom sent) and the ids it names."""
        self._threads[(mailbox_id, message_id)] = thread_id
        self._placed.setdefault((mailbox_id, message_id), fingerprint)
        for other in named:
            self._threads.setdefault((mailbox_id, other), thread_id)
        if starts_thread:
            self._starters.setdefault((mailbox_id, thread_id), message_id)

    def remember_letter(self, letter: LetterThreaded) -> None:
        self.remember(
            letter.mailbox_id,
            letter.letter_key or letter.message_id,
            letter.thread_id,
            letter.starts_thread,
            (*letter.in_reply_to, *letter.references),
            letter.fingerprint,
        )

    def remember_reply(self, reply: ReplyRequested) -> None:
        """A reply mailroom will send joins the thread: a customer's answer to it names its Message-ID."""
        self.remember(
            reply.mailbox_id, reply_message_id(reply.reply_id, reply.mailbox_email), reply.thread_id, False
        )

    def knows(self, mailbox_id: str, message_id: str) -> bool:
        """Whether the letter (or reply) itself was remembered already."""
        return (mailbox_id, message_id) in self._placed

    def key_of(self, mailbox_id: str, message_id: str, fingerprint: str) -> str:
        """The key a letter is told apart by: its Message-ID, unless a letter with another fingerprint was
        remembered under it; then the Message-ID + `#` + the start of this letter's fingerprint."""
        known = self._placed.get((mailbox_id, message_id))
        if not known or not fingerprint or known == fingerprint:
            return message_id
        return f"{message_id}#{fingerprint[:16]}"

    def clear(self) -> None:
        self._threads.clear()
        self._starters.clear()
        self._placed.clear()

    def __len__(self) -> int:
        return len(self._threads)
