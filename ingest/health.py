"""How reading each mailbox goes: folder watchers report to the board, the supervisor publishes what
changed as MailboxHealth events (compacted by mailbox id).

A mailbox's state is its worst folder's: failing over retrying over connecting over ok. A new letter
alone is published at most every `letter_every` seconds, so a busy mailbox does not flood the topic.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.events import FolderHealth, MailboxHealth
from schemas.ids import deterministic_id

__all__ = ["HealthBoard"]

_RANK = {"ok": 0, "stopped": 0, "connecting": 1, "retrying": 2, "failing": 3}


@dataclass
class _Box:
    organization: str
    folders: dict[str, FolderHealth] = field(default_factory=dict)
    advice: dict[str, str | None] = field(default_factory=dict)
    state: str = ""
    since: datetime | None = None
    last_letter_at: datetime | None = None
    published: tuple[object, ...] | None = None
    published_at: datetime | None = None
    published_letter: datetime | None = None
    stopped: bool = False
    removed: bool = False


class HealthBoard:
    def __init__(self, owner: str, clock: Callable[[], datetime], letter_every: float = 10.0) -> None:
        self._owner = owner
        self._clock = clock
        self._letter_every = timedelta(seconds=letter_every)
        self._lock = threading.Lock()
        self._boxes: dict[str, _Box] = {}

    def folder(
        self,
        mailbox_id: str,
        organization: str,
        folder: str,
        state: str,
        waiting: str = "none",
        last_uid: int = 0,
        error: str | None = None,
        advice: str | None = None,
    ) -> None:
        """A folder watcher's report of its state."""
        with self._lock:
            box = self._boxes.setdefault(mailbox_id, _Box(organization))
            box.stopped = False
            box.organization = organization
            box.folders[folder] = FolderHealth(
                folder=folder,
                state=state,
                waiting=waiting,
                last_uid=last_uid,
                error=error,
            )
            box.advice[folder] = advice

    def letter(self, mailbox_id: str, when: datetime) -> None:
        with self._lock:
            box = self._boxes.get(mailbox_id)
            if box is not None and (box.last_letter_at is None or when > box.last_letter_at):
                box.last_letter_at = when

    def stopped(self, mailbox_id: str, removed: bool = False) -> None:
        """The mailbox is no longer read here: moved to another ingest process (its state says
        `stopped` until the new owner reports), or removed from the configuration (its record is
        deleted)."""
        with self._lock:
            box = self._boxes.get(mailbox_id)
            if box is not None:
                box.stopped, box.removed = True, removed
                box.folders.clear()
                box.advice.clear()

    def state_of(self, mailbox_id: str) -> str | None:
        with self._lock:
            box = self._boxes.get(mailbox_id)
            return None if box is None else self._state(box)

    def changes(self) -> list[tuple[str, MailboxHealth | None]]:
        """The mailboxes whose health changed since the last call: (mailbox id, the event to publish, or
        None to delete the mailbox's record)."""
        now = self._clock()
        out: list[tuple[str, MailboxHealth | None]] = []
        with self._lock:
            for mailbox_id, box in list(self._boxes.items()):
                if box.removed:
                    out.append((mailbox_id, None))
                    del self._boxes[mailbox_id]
                    continue
                state = self._state(box)
                if state != box.state:
                    box.state, box.since = state, now
                worst = max(box.folders.values(), key=lambda f: _RANK[f.state], default=None)
                error = worst.error if worst is not None and worst.state != "ok" else None
                advice = box.advice.get(worst.folder) if worst is not None and error else None
                folders = tuple(sorted(box.folders.values(), key=lambda f: f.folder))
                essence = (
                    state,
                    error,
                    advice,
                    tuple((f.folder, f.state, f.waiting, f.error) for f in folders),
                )
                letter_only = essence == box.published and box.last_letter_at != box.published_letter
                if essence == box.published and not letter_only:
                    continue
                if (
                    letter_only
                    and box.published_at is not None
                    and now - box.published_at < self._letter_every
                ):
                    continue
                assert box.since is not None
                out.append(
                    (
                        mailbox_id,
                        MailboxHealth(
                            event_id=deterministic_id(
                                "mailbox-health", mailbox_id, self._owner, now.isoformat()
                            ),
                            occurred_at=now,
                            mailbox_id=mailbox_id,
                            organization=box.organization,
                            state=state,
                            since=box.since,
                            error=error,
                            advice=advice,
                            last_letter_at=box.last_letter_at,
                            folders=folders,
                            owner=self._owner,
                        ),
                    )
                )
                box.published, box.published_at = essence, now
                box.published_letter = box.last_letter_at
                if box.stopped:
                    del self._boxes[mailbox_id]
        return out

    @staticmethod
    def _state(box: _Box) -> str:
        if box.stopped:
            return "stopped"
        if not box.folders:
            return "connecting"
        return max((f.state for f in box.folders.values()), key=lambda s: _RANK[s])
