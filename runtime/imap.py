"""I/O: opens and closes a connection to a mailbox's IMAP server from its settings, the one way ingest
(reading letters), the responder (filing replies) and `mailroom mailboxes check` do it."""

from __future__ import annotations

import functools
import imaplib
import logging
import ssl

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from schemas.config import ImapSettings, Security, reveal
from schemas.errors import ConfigError, ImapConnectError

__all__ = ["close_imap", "login_advice", "open_imap", "tls_context"]

logger = logging.getLogger(__name__)

_BASIC_AUTH_OFF = ("basic auth", "basicauth", "web login required", "application-specific password")


@functools.cache
def tls_context(verify: bool) -> ssl.SSLContext:
    """One context per kind, shared by every connection: making one loads the system's certificate
    authorities, which costs more CPU than the whole IMAP login."""
    context = ssl.create_default_context()
    if not verify:  # test servers only
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def login_advice(answer: str, capabilities: tuple[bytes, ...] | frozenset[bytes], auth: str) -> str:
    """What an administrator should do about a refused login, from the server's words and offers."""
    text = answer.lower()
    offers_oauth = any(c.upper() in (b"AUTH=XOAUTH2", b"AUTH=OAUTHBEARER") for c in capabilities)
    if auth == "password" and (offers_oauth or any(word in text for word in _BASIC_AUTH_OFF)):
        return (
            "the server refuses passwords for this account or offers OAuth2: set imap.auth: xoauth2 with "
            "oauth2 settings (a token, a refresh command or the provider's token endpoint)"
        )
    if auth == "xoauth2":
        return "the server refused the OAuth2 token: check the account, the token's scope and its source"
    return "check imap.username and imap.password; the mailbox is retried when its settings change"


def open_imap(settings: ImapSettings, timeout: float) -> IMAPClient:
    """A logged-in connection; ImapConnectError (retriable unless the login or its secret is the problem)
    otherwise, with nothing left open."""
    s = settings
    where = f"imap {s.username}@{s.host}:{s.port}"
    context = tls_context(s.verify_certificates) if s.security is not Security.NONE else None
    client: IMAPClient | None = None
    try:
        client = IMAPClient(
            s.host, port=s.port, ssl=s.security is Security.TLS, ssl_context=context, timeout=timeout
        )
        client.normalise_times = False
        if s.security is Security.STARTTLS:
            client.starttls(context)
        if s.auth == "xoauth2":
            from runtime.oauth2 import imap_access_token

            client.oauth2_login(s.username, imap_access_token(s))
        else:
            assert s.password is not None  # the model requires it for password logins
            client.login(s.username, reveal(s.password))
    except ConfigError as exc:  # a secret reference that cannot be resolved, or a token source that failed
        close_imap(client)
        raise ImapConnectError(f"{where}: {exc}", retriable=getattr(exc, "retriable", False)) from None
    except LoginError as exc:
        capabilities = _capabilities(client)
        close_imap(client)
        if s.auth == "xoauth2":
            from runtime.oauth2 import forget_imap_token

            forget_imap_token(s)  # the next try asks the token's source for a new one
        advice = login_advice(str(exc), capabilities, s.auth)
        raise ImapConnectError(f"{where}: login refused: {exc}", retriable=False, advice=advice) from exc
    except (OSError, imaplib.IMAP4.error) as exc:
        close_imap(client)
        raise ImapConnectError(
            f"{where}: cannot connect: {exc}",
            retriable=True,
            advice="check the host, port and security (tls, starttls, none) with `mailroom mailboxes check`",
        ) from exc
    return client


def _capabilities(client: IMAPClient | None) -> tuple[bytes, ...]:
    try:
        return tuple(client.capabilities()) if client is not None else ()
    except Exception:
        return ()


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
