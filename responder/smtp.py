"""I/O edge: sends replies over a mailbox's SMTP server: `SmtpPool` keeps up to `smtp.connections` reused
connections (`SmtpSender`, one each) and sends over whichever is free.

Errors are wrapped as SmtpError with the server's code and text: 4xx and network drops are retriable,
5xx and a refused login are not; an OAuth2 token source failing is retriable when its network is the
problem (runtime.oauth2).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Sequence
from typing import NamedTuple

from responder.errors import SmtpError
from runtime.oauth2 import forget_smtp_token, smtp_access_token, xoauth2_string
from schemas.config import SmtpSecurity, SmtpSettings, reveal
from schemas.errors import ConfigError

__all__ = ["Accepted", "SmtpPool", "SmtpSender"]

logger = logging.getLogger(__name__)


class Accepted(NamedTuple):
    """The server's final reply to a message it took, and the recipients it took it for."""

    code: int
    text: str
    recipients: tuple[str, ...]


class SmtpSender:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._conn: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self._settings.verify_certificates:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        conn: smtplib.SMTP
        if s.security is SmtpSecurity.TLS:
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=self._context())
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        try:
            if s.security is SmtpSecurity.STARTTLS:
                conn.starttls(context=self._context())
            if s.oauth2 is not None:
                self._login_xoauth2(conn)
            elif s.username and s.password is not None:
                conn.login(s.username, reveal(s.password))
        except ConfigError as exc:  # a secret reference that cannot be resolved, or a token source failed
            conn.close()
            raise SmtpError(f"{self._where()}: {exc}", retriable=exc.retriable) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _login_xoauth2(self, conn: smtplib.SMTP) -> None:
        """AUTH XOAUTH2 with the token as the initial response; a refused token makes the server send a
        JSON challenge, answered with an empty line, then 535 (SMTPAuthenticationError)."""
        s = self._settings
        initial = xoauth2_string(s.username or "", smtp_access_token(s))
        conn.ehlo_or_helo_if_needed()
        try:
            conn.auth("XOAUTH2", lambda challenge=None: initial if challenge is None else "")
        except smtplib.SMTPAuthenticationError:
            forget_smtp_token(s)  # the next connection asks its source for a new one
            raise

    def send(
        self, message: bytes, envelope_from: str, recipients: Sequence[str], smtputf8: bool = False
    ) -> Accepted:
        """Sends `message` (CRLF line ends) once; returns the server's final reply. A connection found
        dropped (the server timed it out while idle) is reopened once. `envelope_from` "" is the null
        sender `<>`."""
        for attempt in (1, 2):
            reused = self._conn is not None
            try:
                if self._conn is None:
                    self._conn = self._connect()
                return self._transaction(self._conn, message, envelope_from, recipients, smtputf8)
            except smtplib.SMTPServerDisconnected as exc:
                self.close()
                if attempt == 1 and reused:
                    continue
                raise SmtpError(f"{self._where()}: connection lost: {exc}") from exc
            except smtplib.SMTPAuthenticationError as exc:
                self.close()
                raise SmtpError(
                    f"{self._where()}: login refused", exc.smtp_code, _text(exc.smtp_error), retriable=False
                ) from exc
            except smtplib.SMTPResponseException as exc:  # a refusal the transaction did not classify
                self._reset()
                raise self._refused(exc.smtp_code, exc.smtp_error) from exc
            except SmtpError as exc:
                if exc.code == 421:  # the server is closing the connection
                    self.close()
                else:
                    self._reset()
                raise
            except ssl.SSLCertVerificationError as exc:  # trying again will not make it trusted
                self.close()
                raise SmtpError(f"{self._where()}: certificate not trusted: {exc}", retriable=False) from exc
            except (smtplib.SMTPException, OSError) as exc:
                self.close()
                raise SmtpError(f"{self._where()}: {type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    def _transaction(
        self,
        conn: smtplib.SMTP,
        message: bytes,
        envelope_from: str,
        recipients: Sequence[str],
        smtputf8: bool,
    ) -> Accepted:
        """MAIL, RCPT, DATA as smtplib's sendmail does them, keeping the final reply it does not return."""
        if not recipients:
            raise SmtpError(f"{self._where()}: no recipients", retriable=False)
        conn.ehlo_or_helo_if_needed()
        options = []
        if smtputf8:
            if not conn.has_extn("smtputf8"):
                raise SmtpError(
                    f"{self._where()}: an address is not ASCII and the server does not offer SMTPUTF8",
                    retriable=False,
                )
            options.append("SMTPUTF8")
        if (smtputf8 or not message.isascii()) and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if conn.has_extn("size"):
            options.append(f"SIZE={len(message)}")
        code, text = conn.mail(envelope_from, options)
        if code != 250:
            raise self._refused(code, text)
        refused: dict[str, tuple[int, bytes]] = {}
        for rcpt in recipients:
            code, text = conn.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, text)
        if len(refused) == len(recipients):
            code, text = next(iter(refused.values()))
            raise self._refused(code, text)
        if refused:
            logger.warning("%s: some recipients refused: %s", self._where(), sorted(refused))
        code, text = conn.data(message)
        if code != 250:
            raise self._refused(code, text)
        return Accepted(code, _text(text), tuple(r for r in recipients if r not in refused))

    def _refused(self, code: int, text: bytes | str) -> SmtpError:
        return SmtpError(
            f"{self._where()}: refused with {code} {_text(text)}",
            code,
            _text(text),
            retriable=400 <= code < 500,
        )

    def _where(self) -> str:
        return f"smtp {self._settings.host}:{self._settings.port}"

    def _reset(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


class SmtpPool:
    """A mailbox's SMTP connections: replies go out over several at once, each connection opened when
    first needed and reused after."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._senders = [SmtpSender(settings) for _ in range(settings.connections)]
        self._free: asyncio.Queue[SmtpSender] | None = None

    async def send(
        self, message: bytes, envelope_from: str, recipients: tuple[str, ...], smtputf8: bool = False
    ) -> Accepted:
        """`SmtpSender.send` in a thread, over a connection no other reply is using meanwhile."""
        if self._free is None:  # made on the running loop
            self._free = asyncio.Queue()
            for sender in self._senders:
                self._free.put_nowait(sender)
        sender = await self._free.get()
        try:
            return await asyncio.to_thread(sender.send, message, envelope_from, recipients, smtputf8)
        finally:
            self._free.put_nowait(sender)

    def close(self) -> None:
        for sender in self._senders:
            sender.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
