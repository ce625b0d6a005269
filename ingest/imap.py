"""I/O edge: reads new letters from a mailbox folder over IMAP (read-only; flags are left as they are)."""

from __future__ import annotations

import imaplib
import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from ingest.errors import ImapError, ImapLoginError
from schemas.config import ImapSettings, reveal

__all__ = ["FetchedLetter", "FolderBatch", "ImapReader"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedLetter:
    uid: int
    internal_date: datetime
    raw: bytes


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
        if self._client is not None:
            return self._client
        s = self._settings
        context = ssl.create_default_context()
        if not s.verify_certificates:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            client = IMAPClient(s.host, port=s.port, ssl=s.ssl, ssl_context=context, timeout=self._timeout)
            client.normalise_times = False
            client.login(s.username, reveal(s.password))
        except LoginError as exc:
            raise ImapLoginError(f"{s.username}@{s.host}:{s.port}: login refused: {exc}") from exc
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ImapError(f"{s.host}:{s.port}: cannot connect: {exc}") from exc
        self._client = client
        return client

    def read_new(self, folder: str, uidvalidity: int | None, last_uid: int, limit: int = 100) -> FolderBatch:
        """Up to `limit` letters after `last_uid`; all of them from UID 1 when UIDVALIDITY changed."""
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
            fetched = client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
        except ImapError:
            raise
        except (TimeoutError, OSError, imaplib.IMAP4.error) as exc:
            self.close()
            raise ImapError(f"{self._settings.host}: reading {folder!r} failed: {exc}") from exc
        letters = []
        for uid in uids:
            item = fetched.get(uid)
            if item is None:  # expunged between SEARCH and FETCH
                continue
            date = item.get(b"INTERNALDATE")
            when = date if isinstance(date, datetime) else datetime.now(UTC)
            letters.append(
                FetchedLetter(uid, when if when.tzinfo else when.replace(tzinfo=UTC), item[b"BODY[]"])
            )
        return FolderBatch(current, letters)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except Exception:  # the connection is being thrown away; nothing to save
                logger.debug("IMAP logout failed", exc_info=True)
