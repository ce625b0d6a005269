"""Pure: how far a folder has been read, where a folder never read starts, and which letters of a folder
recreated under a new UIDVALIDITY were read already.

A folder's progress is its IngestCheckpoint: UIDVALIDITY, the last UID read, and fingerprints (Message-ID
and size) of its latest letters with their arrival times. A folder recreated with a new UIDVALIDITY (a
server migration, a restore from backup) is read again from UID 1, but a letter is published only when it
is new: its fingerprint is not among the recent ones and it arrived after everything older than them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from ingest.parse import normalize_message_id
from schemas.events import IngestCheckpoint
from schemas.ids import deterministic_id

__all__ = ["RECENT_LETTERS", "FolderProgress", "fingerprint", "message_id_in"]

RECENT_LETTERS = 500
"""Fingerprints kept per folder: letters re-read after a UIDVALIDITY change are recognised among these."""

_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def message_id_in(head: bytes) -> str:
    """The normalised Message-ID of a letter's header block (or of the whole letter: only the part before
    the first empty line is looked at); "" when it has none."""
    end = re.search(rb"\r?\n\r?\n", head)
    found = _MESSAGE_ID.search(head[: end.start()] if end else head)
    if found is None:
        return ""
    return normalize_message_id(found.group(1).decode("ascii", "replace"))


def fingerprint(message_id: str, size: int) -> str:
    """Equal for the same letter on both sides of a UIDVALIDITY change (servers keep bytes and size)."""
    return hashlib.sha256(f"{message_id}\n{size}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FolderProgress:
    """A folder's progress; `recent` holds `fingerprint@unix seconds of arrival`, oldest first."""

    mailbox_id: str
    folder: str
    uidvalidity: int
    last_uid: int
    recent: tuple[str, ...] = ()
    recent_since: datetime | None = None
    """Every letter that arrived before this moment was read (or was before where the folder started)."""
    recheck: bool = False
    """Letters after `last_uid` are checked with `seen` before they are published."""

    @classmethod
    def of(cls, point: IngestCheckpoint) -> FolderProgress:
        return cls(
            point.mailbox_id,
            point.folder,
            point.uidvalidity,
            point.last_uid,
            point.recent,
            point.recent_since,
            point.recheck,
        )

    @classmethod
    def starting(
        cls, mailbox_id: str, folder: str, uidvalidity: int, uidnext: int, now: datetime
    ) -> FolderProgress:
        """A folder read for the first time, from now on: the letters it holds already are not read."""
        return cls(mailbox_id, folder, uidvalidity, max(uidnext - 1, 0), (), now)

    @classmethod
    def starting_from(cls, mailbox_id: str, folder: str, uidvalidity: int, since: datetime) -> FolderProgress:
        """A folder read for the first time from a configured moment: the letters that arrived since
        (INTERNALDATE has whole seconds: a letter of the moment's second counts as arrived since)."""
        return cls(mailbox_id, folder, uidvalidity, 0, (), since.replace(microsecond=0), recheck=True)

    def checkpoint(self, now: datetime) -> IngestCheckpoint:
        return IngestCheckpoint(
            event_id=deterministic_id(
                "ingest-checkpoint", self.mailbox_id, self.folder, self.uidvalidity, self.last_uid
            ),
            occurred_at=now,
            mailbox_id=self.mailbox_id,
            folder=self.folder,
            uidvalidity=self.uidvalidity,
            last_uid=self.last_uid,
            recent=self.recent,
            recent_since=self.recent_since,
            recheck=self.recheck,
        )

    def renumbered(self, uidvalidity: int) -> FolderProgress:
        """The folder was recreated: read it from UID 1 again, keeping what recognises letters read."""
        return replace(self, uidvalidity=uidvalidity, last_uid=0, recheck=True)

    def caught_up(self) -> FolderProgress:
        """Every letter there is has been read: later ones are new, with nothing to check."""
        return replace(self, recheck=False)

    def seen(self, message_id: str, size: int, arrived: datetime) -> bool:
        """Whether a letter of a recreated folder was read before (or lies before where reading started)."""
        if self.recent_since is not None and arrived < self.recent_since:
            return True
        mark = fingerprint(message_id, size)
        return any(entry.partition("@")[0] == mark for entry in self.recent)

    def unread(self, uid: int, arrived: datetime, size: int, message_id: str) -> bool:
        """The opposite of `seen`, in the shape the IMAP reader asks with."""
        return not self.seen(message_id, size, arrived)

    def advanced(
        self, last_uid: int, letters: Iterable[tuple[str, int, datetime]], keep: int = RECENT_LETTERS
    ) -> FolderProgress:
        """After reading up to `last_uid`, with (Message-ID, size, arrival) of the letters published."""
        recent = list(self.recent)
        recent.extend(
            f"{fingerprint(mid, size)}@{int(arrived.timestamp())}" for mid, size, arrived in letters
        )
        since = self.recent_since
        for dropped in recent[: max(0, len(recent) - keep)]:
            # INTERNALDATE has whole seconds: a letter of the same second as a forgotten one counts as read.
            when = datetime.fromtimestamp(int(dropped.partition("@")[2] or 0), UTC) + timedelta(seconds=1)
            since = when if since is None or when > since else since
        return replace(self, last_uid=last_uid, recent=tuple(recent[-keep:]), recent_since=since)
