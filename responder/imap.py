"""I/O edge: files copies of sent replies in a mailbox's Sent folder over IMAP, one reused connection per
mailbox (reopened after a failure). `FilingQueue` lets concurrent replies share it: the copies asked for
while one round is under way are filed together in the next (one SELECT, one SEARCH, one MULTIAPPEND).

Errors are wrapped as ImapError: network drops and temporary refusals are retriable, a refused login and
other NO/BAD answers are not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from responder.errors import ImapError
from responder.folders import (
    appended_uid,
    appended_uids,
    message_id_of_header,
    message_id_search,
    sent_folder,
    temporary_refusal,
)
from runtime.imap import close_imap, open_imap
from schemas.config import ImapSettings
from schemas.errors import ImapConnectError

__all__ = ["MAX_ROUND", "Copy", "FiledCopy", "FilingQueue", "SentFolder"]

logger = logging.getLogger(__name__)

_SEEN = b"\\Seen"
_ID_HEADER = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"

MAX_ROUND = 50
"""The most copies filed in one round (one SEARCH naming each Message-ID, one MULTIAPPEND)."""


@dataclass(frozen=True)
class Copy:
    """A copy to file: the reply's exact bytes, its Message-ID (without brackets), its internal date."""

    message: bytes
    message_id: str
    when: datetime


@dataclass(frozen=True)
class FiledCopy:
    """Where the copy of a reply is; `appended` False: it was there already and nothing was appended."""

    folder: str
    uidvalidity: int | None
    uid: int | None
    appended: bool


class SentFolder:
    """The Sent folder of one mailbox: the one marked \\Sent, else `imap.sent_folder` (created if missing)."""

    def __init__(self, settings: ImapSettings, timeout: float = 30.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._client: IMAPClient | None = None
        self._folder: str | None = None

    def file(self, message: bytes, message_id: str, when: datetime) -> FiledCopy:
        """Appends `message` flagged \\Seen, unless a message with its Message-ID is in the folder already
        (so filing twice, e.g. after a crash, keeps one copy). A reused connection found dropped is reopened
        once; ImapError otherwise."""
        return self.file_many([Copy(message, message_id, when)])[0]

    def file_many(self, copies: Sequence[Copy]) -> list[FiledCopy]:
        """`file` for several copies in one round, in order: those already in the folder are found with
        one SEARCH, the others appended at once (MULTIAPPEND when the server offers it)."""
        for attempt in (1, 2):
            reused = self._client is not None
            try:
                client = self._connect()
                return self._file(client, copies)
            except ImapError:
                raise
            except (IMAPClientAbortError, OSError) as exc:  # the connection is gone (TimeoutError included)
                self.close()
                if attempt == 1 and reused:
                    logger.info("%s: connection lost, reconnecting: %s", self._where(), exc)
                    continue
                raise ImapError(f"{self._where()}: connection lost: {exc}") from exc
            except IMAPClientError as exc:  # a NO or BAD answer
                self.close()
                text = str(exc)
                raise ImapError(f"{self._where()}: {text}", retriable=temporary_refusal(text)) from exc
        raise AssertionError("unreachable")

    def _file(self, client: IMAPClient, copies: Sequence[Copy]) -> list[FiledCopy]:
        folder = self._sent(client)
        selected = client.select_folder(folder, readonly=True)
        uidvalidity = int(selected[b"UIDVALIDITY"]) if b"UIDVALIDITY" in selected else None
        # A copy is appended with its reply's time as internal date: an earlier copy of the same reply
        # has that date too (a day either way covers the server's time zone).
        since = (min(c.when for c in copies) - timedelta(days=1)).date()
        there = self._present(client, [c.message_id for c in copies], since)
        for message_id in there:
            logger.info("%s: %s is in %r already; not appended again", self._where(), message_id, folder)
        missing = list({c.message_id: c for c in copies if c.message_id not in there}.values())
        appended = self._append(client, folder, missing, uidvalidity)
        return [
            FiledCopy(folder, uidvalidity, there[c.message_id], appended=False)
            if c.message_id in there
            else appended[c.message_id]
            for c in copies
        ]

    def _present(self, client: IMAPClient, message_ids: list[str], since: date) -> dict[str, int]:
        """Which of `message_ids` the selected folder holds (among messages since `since`), with UIDs."""
        found = client.search(message_id_search(list(dict.fromkeys(message_ids)), since))
        if not found:
            return {}
        if len(message_ids) == 1:
            return {message_ids[0]: max(found)}
        present: dict[str, int] = {}
        for uid, data in sorted(client.fetch(found, [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]).items()):
            message_id = message_id_of_header(data.get(_ID_HEADER, b""))
            if message_id in message_ids:
                present[message_id] = uid
        return present

    def _append(
        self, client: IMAPClient, folder: str, copies: list[Copy], uidvalidity: int | None
    ) -> dict[str, FiledCopy]:
        if not copies:
            return {}
        if len(copies) > 1 and client.has_capability("MULTIAPPEND"):
            status, lines = client.multiappend(
                folder, [{"msg": c.message, "flags": (_SEEN,), "date": c.when} for c in copies]
            )
            answer = b" ".join(line for line in lines if isinstance(line, bytes))
            if status != "OK":  # imaplib hands a NO back instead of raising it
                raise IMAPClientError(f"append failed: {answer.decode('utf-8', 'replace')}")
            uids = appended_uids(answer, len(copies))
            validity = uids[0] if uids else uidvalidity
            return {
                c.message_id: FiledCopy(folder, validity, uids[1][i] if uids else None, appended=True)
                for i, c in enumerate(copies)
            }
        filed = {}
        for c in copies:
            uid = appended_uid(client.append(folder, c.message, flags=(_SEEN,), msg_time=c.when))
            filed[c.message_id] = FiledCopy(
                folder, uid[0] if uid else uidvalidity, uid[1] if uid else None, appended=True
            )
        return filed

    def _sent(self, client: IMAPClient) -> str:
        if self._folder is None:
            folder, exists = sent_folder(client.list_folders(), self._settings.sent_folder)
            if not exists:
                try:
                    client.create_folder(folder)
                    logger.info("%s: created the folder %r for sent replies", self._where(), folder)
                except IMAPClientError as exc:  # another client may have created it meanwhile
                    if not client.folder_exists(folder):
                        raise ImapError(f"{self._where()}: cannot create {folder!r}: {exc}") from exc
            self._folder = folder
        return self._folder

    def _connect(self) -> IMAPClient:
        if self._client is None:
            try:
                self._client = open_imap(self._settings, self._timeout)
            except ImapConnectError as exc:
                raise ImapError(str(exc), retriable=exc.retriable) from exc
        return self._client

    def _where(self) -> str:
        return f"imap {self._settings.username}@{self._settings.host}:{self._settings.port}"

    def close(self) -> None:
        client, self._client, self._folder = self._client, None, None
        close_imap(client)


class FilingQueue:
    """A mailbox's Sent folder shared by replies handled concurrently: each `file` waits for the round
    that files its copy; the copies asked for while a round is under way make the next one."""

    def __init__(self, folder: SentFolder) -> None:
        self._folder = folder
        self._waiting: list[tuple[Copy, asyncio.Future[FiledCopy]]] = []
        self._rounds: asyncio.Task[None] | None = None

    async def file(self, message: bytes, message_id: str, when: datetime) -> FiledCopy:
        future: asyncio.Future[FiledCopy] = asyncio.get_running_loop().create_future()
        self._waiting.append((Copy(message, message_id, when), future))
        if self._rounds is None or self._rounds.done():
            self._rounds = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        await asyncio.sleep(0)  # the copies asked for in this same turn of the loop join the first round
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_ROUND], self._waiting[MAX_ROUND:]
            try:
                filed = await asyncio.to_thread(self._folder.file_many, [copy for copy, _ in batch])
            except Exception as exc:  # handed to every reply of the round, which decides to retry or not
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), copy in zip(batch, filed, strict=True):
                if not future.done():
                    future.set_result(copy)

    def close(self) -> None:
        self._folder.close()
