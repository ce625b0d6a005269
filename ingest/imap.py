"""I/O edge: reads new letters from a mailbox folder over IMAP (read-only; flags are left as they are)."""

from __future__ import annotations

import imaplib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from imapclient import IMAPClient

from ingest.errors import ImapError, ImapLoginError
from runtime.imap import close_imap, open_imap
from schemas.config import ImapSettings
from schemas.errors import ImapConnectError

__all__ = ["FetchedLetter", "FolderBatch", "ImapReader"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedLetter:
    uid: int
    internal_date: datetime
    size: int
    """RFC822.SIZE as the server reports it."""
    raw: bytes
    """The whole letter, or only its first `head_bytes` when it is over the size limit."""

    @property
    def complete(self) -> bool:
        return len(self.raw) >= self.size


@dataclass(frozen=True)
class FolderBatch:
    """Letters of a folder with UID above the last one read (oldest first), under one UIDVALIDITY."""

    uidvalidity: int
    letters: list[FetchedLetter]


class ImapReader:
    """One connection to one mailbox's IMAP server; reconnects on the next call after a failure."""

    def __init__(self, settings: ImapSettings, timeout: float = 30.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._client: IMAPClient | None = None

    def _connect(self) -> IMAPClient:
        if self._client is None:
            try:
                self._client = open_imap(self._settings, self._timeout)
            except ImapConnectError as exc:
                raise (ImapError if exc.retriable else ImapLoginError)(str(exc)) from exc
        return self._client

    def read_new(
        self,
        folder: str,
        uidvalidity: int | None,
        last_uid: int,
        max_bytes: int,
        head_bytes: int,
        limit: int = 100,
    ) -> FolderBatch:
        """Up to `limit` letters after `last_uid` (all from UID 1 when UIDVALIDITY changed). A letter over
        `max_bytes` is not downloaded whole: only its first `head_bytes` come back."""
        try:
            client = self._connect()
            info = client.select_folder(folder, readonly=True)
            current = int(info[b"UIDVALIDITY"])
            if current != uidvalidity:
                last_uid = 0
            # "UID n:*" always names the last message, even below n: filter.
            uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)[:limit]
            if not uids:
                return FolderBatch(current, [])
            meta = client.fetch(uids, ["RFC822.SIZE", "INTERNALDATE"])
            small = [u for u in uids if u in meta and int(meta[u][b"RFC822.SIZE"]) <= max_bytes]
            large = [u for u in uids if u in meta and u not in small]
            bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
            bodies.update(client.fetch(large, [f"BODY.PEEK[]<0.{head_bytes}>"]) if large else {})
        except ImapError:
            raise
        except (TimeoutError, OSError, imaplib.IMAP4.error) as exc:
            self.close()
            raise ImapError(f"{self._settings.host}: reading {folder!r} failed: {exc}") from exc
        letters = []
        for uid in uids:
            if uid not in meta or uid not in bodies:  # expunged meanwhile
                continue
            date = meta[uid].get(b"INTERNALDATE")
            when = date if isinstance(date, datetime) else datetime.now(UTC)
            raw = next((v for k, v in bodies[uid].items() if k.startswith(b"BODY[")), b"")
            size = int(meta[uid][b"RFC822.SIZE"])
            letters.append(FetchedLetter(uid, when if when.tzinfo else when.replace(tzinfo=UTC), size, raw))
        return FolderBatch(current, letters)

    def close(self) -> None:
        client, self._client = self._client, None
        close_imap(client)
