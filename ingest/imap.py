"""I/O edge: reads new letters from a mailbox folder over IMAP (read-only; flags are left as they are) and
waits for more with IDLE where the server offers it."""

from __future__ import annotations

import imaplib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from imapclient import IMAPClient

from ingest.errors import ImapError, ImapLoginError
from ingest.progress import message_id_in
from runtime.imap import close_imap, open_imap
from schemas.config import ImapSettings
from schemas.errors import ImapConnectError

__all__ = ["FetchedLetter", "FolderBatch", "FolderStatus", "ImapReader", "Wanted"]

logger = logging.getLogger(__name__)

_NEWS = (b"EXISTS", b"RECENT")
KEEPALIVE_SECONDS = 240.0
"""A polled connection says NOOP this often between looks at its folder."""

Wanted = Callable[[int, datetime, int, str], bool]
"""(uid, arrival, size, Message-ID) -> whether the letter is to be read; others are passed over."""


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
class FolderStatus:
    uidvalidity: int
    uidnext: int


@dataclass(frozen=True)
class FolderBatch:
    """Letters of a folder with UID above the last one read (oldest first), under one UIDVALIDITY;
    `last_uid`: the highest UID looked at, read or passed over (0 when there was none)."""

    uidvalidity: int
    letters: list[FetchedLetter]
    last_uid: int = 0


class ImapReader:
    """One connection to one mailbox's IMAP server; reconnects on the next call after a failure."""

    def __init__(self, settings: ImapSettings, timeout: float = 30.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._client: IMAPClient | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    def _connect(self) -> IMAPClient:
        if self._client is None:
            try:
                self._client = open_imap(self._settings, self._timeout)
            except ImapConnectError as exc:
                raise (ImapError if exc.retriable else ImapLoginError)(str(exc), exc.advice) from exc
        return self._client

    def _failed(self, what: str, exc: BaseException) -> ImapError:
        self.close()
        return ImapError(f"{self._settings.host}: {what} failed: {exc}")

    def select(self, folder: str) -> FolderStatus:
        """Opens the folder read-only; its UIDVALIDITY and the UID the next letter will get."""
        try:
            info = self._connect().select_folder(folder, readonly=True)
            uidnext = info.get(b"UIDNEXT")
            if uidnext is None:  # a server that does not say: one past the highest UID there is
                uidnext = max(self._connect().search(["ALL"]), default=0) + 1
        except ImapError:
            raise
        except (TimeoutError, OSError, imaplib.IMAP4.error) as exc:
            raise self._failed(f"opening {folder!r}", exc) from exc
        return FolderStatus(int(info[b"UIDVALIDITY"]), int(uidnext))

    def supports_idle(self) -> bool:
        client = self._client
        return client is not None and self._settings.idle and client.has_capability("IDLE")

    def read_new(
        self,
        folder: str,
        uidvalidity: int | None,
        last_uid: int,
        max_bytes: int,
        head_bytes: int,
        limit: int = 100,
        wanted: Wanted | None = None,
    ) -> FolderBatch:
        """Up to `limit` letters after `last_uid` (all from UID 1 when UIDVALIDITY changed). A letter over
        `max_bytes` is not downloaded whole: only its first `head_bytes` come back. With `wanted`, only the
        letters it accepts are downloaded (their Message-ID is fetched first)."""
        try:
            client = self._connect()
            info = client.select_folder(folder, readonly=True)
            current = int(info[b"UIDVALIDITY"])
            if current != uidvalidity:
                last_uid = 0
            # "UID n:*" always names the last message, even below n: filter.
            uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)[:limit]
            if not uids:
                return FolderBatch(current, [], 0)
            items = ["RFC822.SIZE", "INTERNALDATE"]
            if wanted is not None:
                items.append("BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]")
            meta = client.fetch(uids, items)
            dates = {u: _arrival(meta[u].get(b"INTERNALDATE")) for u in uids if u in meta}
            if wanted is not None:
                chosen = [
                    u
                    for u in uids
                    if u in meta
                    and wanted(u, dates[u], int(meta[u][b"RFC822.SIZE"]), _header_message_id(meta[u]))
                ]
            else:
                chosen = [u for u in uids if u in meta]
            small = [u for u in chosen if int(meta[u][b"RFC822.SIZE"]) <= max_bytes]
            large = [u for u in chosen if u not in small]
            bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
            bodies.update(client.fetch(large, [f"BODY.PEEK[]<0.{head_bytes}>"]) if large else {})
        except ImapError:
            raise
        except (TimeoutError, OSError, imaplib.IMAP4.error) as exc:
            raise self._failed(f"reading {folder!r}", exc) from exc
        letters = []
        for uid in chosen:
            if uid not in bodies:  # expunged meanwhile
                continue
            raw = next((v for k, v in bodies[uid].items() if k.startswith(b"BODY[")), b"")
            letters.append(FetchedLetter(uid, dates[uid], int(meta[uid][b"RFC822.SIZE"]), raw))
        return FolderBatch(current, letters, uids[-1])

    def wait(self, stop: threading.Event, seconds: float, poll_seconds: float) -> None:
        """Returns when the selected folder may have news: with IDLE as soon as the server says so (or
        after `seconds`, well under the 29 minutes servers allow), by polling after `poll_seconds`
        otherwise; at once when `stop` is set."""
        client = self._client
        if client is None or not self.supports_idle():
            self._poll_wait(client, stop, poll_seconds)
            return
        deadline = time.monotonic() + seconds
        try:
            client.idle()
            try:
                while not stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    responses = client.idle_check(timeout=min(1.0, left))
                    if any(_is_news(r) for r in responses):
                        return
                    if any(r and r[0] == b"BYE" for r in responses):
                        raise ImapError(f"{self._settings.host}: the server ended the connection during IDLE")
            finally:
                client.idle_done()
        except ImapError:
            self.close()
            raise
        except (TimeoutError, OSError, imaplib.IMAP4.error) as exc:
            raise self._failed("IDLE", exc) from exc

    def _poll_wait(self, client: IMAPClient | None, stop: threading.Event, seconds: float) -> None:
        """Waits `seconds`, saying NOOP every few minutes so that the server keeps the connection (servers
        may log out a client silent for 30 minutes)."""
        deadline = time.monotonic() + seconds
        while not stop.wait(min(KEEPALIVE_SECONDS, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or client is None:
                return
            try:
                client.noop()
            except (TimeoutError, OSError, imaplib.IMAP4.error) as exc:
                raise self._failed("NOOP", exc) from exc

    def close(self) -> None:
        client, self._client = self._client, None
        close_imap(client)


def _is_news(response: tuple[object, ...]) -> bool:
    return len(response) >= 2 and response[1] in _NEWS


def _arrival(date: object) -> datetime:
    when = date if isinstance(date, datetime) else datetime.now(UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _header_message_id(item: dict[bytes, object]) -> str:
    head = next((v for k, v in item.items() if k.startswith(b"BODY[HEADER")), b"")
    return message_id_in(head) if isinstance(head, bytes) else ""
