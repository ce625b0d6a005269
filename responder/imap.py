"""I/O edge: files copies of sent replies in a mailbox's Sent folder over IMAP, one reused connection per
mailbox (reopened after a failure).

Errors are wrapped as ImapError: network drops and temporary refusals are retriable, a refused login and
other NO/BAD answers are not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from responder.errors import ImapError
from responder.folders import appended_uid, sent_folder, temporary_refusal
from runtime.imap import close_imap, open_imap
from schemas.config import ImapSettings
from schemas.errors import ImapConnectError

__all__ = ["FiledCopy", "SentFolder"]

logger = logging.getLogger(__name__)

_SEEN = b"\\Seen"


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
        for attempt in (1, 2):
            reused = self._client is not None
            try:
                client = self._connect()
                return self._file(client, message, message_id, when)
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

    def _file(self, client: IMAPClient, message: bytes, message_id: str, when: datetime) -> FiledCopy:
        folder = self._sent(client)
        selected = client.select_folder(folder, readonly=True)
        uidvalidity = int(selected[b"UIDVALIDITY"]) if b"UIDVALIDITY" in selected else None
        found = client.search(["HEADER", "Message-ID", f"<{message_id}>"])
        if found:
            logger.info("%s: %s is in %r already; not appended again", self._where(), message_id, folder)
            return FiledCopy(folder, uidvalidity, max(found), appended=False)
        answer = client.append(folder, message, flags=(_SEEN,), msg_time=when)
        uid = appended_uid(answer)
        return FiledCopy(folder, uid[0] if uid else uidvalidity, uid[1] if uid else None, appended=True)

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
