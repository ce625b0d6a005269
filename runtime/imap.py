"""I/O: opens and closes a connection to a mailbox's IMAP server from its settings, the one way ingest
(reading letters) and the responder (filing replies) do it."""

from __future__ import annotations

import imaplib
import logging
import ssl

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from schemas.config import ImapSettings, reveal
from schemas.errors import ConfigError, ImapConnectError

__all__ = ["close_imap", "open_imap"]

logger = logging.getLogger(__name__)


def open_imap(settings: ImapSettings, timeout: float) -> IMAPClient:
    """A logged-in connection; ImapConnectError (retriable unless the login or its password is the
    problem) otherwise, with nothing left open."""
    s = settings
    where = f"imap {s.username}@{s.host}:{s.port}"
    context = ssl.create_default_context()
    if not s.verify_certificates:  # test servers only
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client: IMAPClient | None = None
    try:
        client = IMAPClient(s.host, port=s.port, ssl=s.ssl, ssl_context=context, timeout=timeout)
        client.normalise_times = False
        client.login(s.username, reveal(s.password))
    except ConfigError as exc:  # a password reference to a variable that is not set
        close_imap(client)
        raise ImapConnectError(f"{where}: {exc}", retriable=False) from None
    except LoginError as exc:
        close_imap(client)
        raise ImapConnectError(f"{where}: login refused: {exc}", retriable=False) from exc
    except (OSError, imaplib.IMAP4.error) as exc:
        close_imap(client)
        raise ImapConnectError(f"{where}: cannot connect: {exc}", retriable=True) from exc
    return client


def close_imap(client: IMAPClient | None) -> None:
    """Ends a connection that is being thrown away; a failure to say goodbye loses nothing."""
    if client is None:
        return
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            logger.debug("IMAP connection close failed", exc_info=True)
