"""Read and fill a Dovecot mailbox as an IMAP client would, for tests and the demo."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

__all__ = ["append_message", "fetch_messages", "find_special_folder", "wait_for_messages"]

logger = logging.getLogger(__name__)


@contextmanager
def _login(host: str, port: int, user: str, password: str) -> Iterator[IMAPClient]:
    client = IMAPClient(host, port, ssl=False, timeout=30)
    try:
        client.login(user, password)
        yield client
    finally:
        try:
            client.logout()
        except (IMAPClientError, OSError):  # the connection may already be gone; just close it
            client.shutdown()


def fetch_messages(host: str, port: int, user: str, password: str, folder: str = "INBOX") -> list[bytes]:
    """All messages in `folder`, oldest first, as raw bytes; reading does not mark them \\Seen."""
    with _login(host, port, user, password) as client:
        client.select_folder(folder, readonly=True)
        uids = sorted(client.search(["ALL"]))
        if not uids:
            return []
        fetched = client.fetch(uids, ["BODY.PEEK[]"])
        return [bytes(fetched[uid][b"BODY[]"]) for uid in uids]


def append_message(host: str, port: int, user: str, password: str, raw: bytes, folder: str = "INBOX") -> None:
    """Put `raw` into `folder` with IMAP APPEND, as a mail client saving a letter would."""
    with _login(host, port, user, password) as client:
        client.append(folder, raw)
    logger.debug("appended %d bytes to %s/%s", len(raw), user, folder)


def find_special_folder(host: str, port: int, user: str, password: str, flag: bytes) -> str | None:
    """The name of the folder carrying a SPECIAL-USE flag such as b"\\\\Sent", or None."""
    with _login(host, port, user, password) as client:
        name: str | None = client.find_special_folder(flag)
        return name


def wait_for_messages(
    host: str,
    port: int,
    user: str,
    password: str,
    count: int,
    folder: str = "INBOX",
    timeout: float = 10.0,
) -> list[bytes]:
    """Poll until `folder` holds at least `count` messages and return them all; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        messages = fetch_messages(host, port, user, password, folder)
        if len(messages) >= count:
            return messages
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{user} {folder}: {len(messages)} message(s) after {timeout} s, expected at least {count}"
            )
        time.sleep(0.2)
