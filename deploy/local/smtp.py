"""A real SMTP server on loopback that hands each accepted message to Dovecot over LMTP, for tests."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, NamedTuple

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from deploy.local.ports import free_port

__all__ = ["Received", "SmtpRelay"]

logger = logging.getLogger(__name__)


class Received(NamedTuple):
    """One message the relay accepted and delivered: the SMTP envelope, the raw bytes, and when (epoch
    seconds) it was accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float = 0.0


class SmtpRelay:
    """SMTP on host:port -> LMTP into Dovecot; optional AUTH against `users` (PLAIN, LOGIN) or an OAuth2
    provider (XOAUTH2); injectable DATA failures."""

    def __init__(
        self,
        lmtp_host: str,
        lmtp_port: int,
        host: str = "127.0.0.1",
        port: int | None = None,
        users: dict[str, str] | None = None,
        tls: Literal["none", "starttls", "implicit"] = "none",
        tls_context: ssl.SSLContext | None = None,
        oauth2_check: Callable[[str, str], bool] | None = None,
    ) -> None:
        """`tls`: plain SMTP, STARTTLS offered (and required before MAIL), or TLS from the first byte;
        the last two need `tls_context` (see deploy.local.tls). `oauth2_check(user, token)`: whether an
        AUTH XOAUTH2 token is valid for that user (e.g. deploy.local.oauth's `check_access_token`); with
        it, MAIL needs a login too."""
        if tls != "none" and tls_context is None:
            raise ValueError(f"tls={tls!r} needs a tls_context")
        self.tls = tls
        self.lmtp_host = lmtp_host
        self.lmtp_port = lmtp_port
        self.host = host
        # aiosmtpd's Controller cannot bind port 0: it connects to its own port to check readiness.
        self.port = port if port is not None else free_port()
        self._users = dict(users) if users is not None else None
        self._oauth2_check = oauth2_check
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._faults: list[str] = []
        self._known: set[str] = set()
        self._controller = Controller(
            self,
            hostname=host,
            port=self.port,
            authenticator=self._authenticate if users is not None else None,
            # auth_required=True would make aiosmtpd warn on every connection without TLS, so
            # handle_MAIL enforces it instead; plain AUTH on loopback is the point of this server.
            auth_require_tls=False,
            auth_exclude_mechanism=["XOAUTH2"] if oauth2_check is None else None,
            tls_context=tls_context if tls == "starttls" else None,
            require_starttls=tls == "starttls",
            ssl_context=tls_context if tls == "implicit" else None,
        )

    @property
    def received(self) -> list[Received]:
        """A snapshot of the messages accepted so far, oldest first."""
        with self._lock:
            return list(self._received)

    def fail_next(self, code: int, text: str, times: int = 1) -> None:
        """Answer the next `times` DATA commands with `code text` instead of delivering (times=0 clears)."""
        with self._lock:
            self._faults = [f"{code} {text}"] * times

    def start(self) -> None:
        self._controller.start()
        logger.info(
            "smtp relay listening on %s:%d -> lmtp %s:%d",
            self.host,
            self.port,
            self.lmtp_host,
            self.lmtp_port,
        )

    def stop(self) -> None:
        self._controller.stop()
        logger.info("smtp relay on %s:%d stopped", self.host, self.port)

    def __enter__(self) -> SmtpRelay:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # aiosmtpd hooks (called on the controller's event loop thread).

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = False
        if isinstance(auth_data, LoginPassword) and self._users is not None:
            login = auth_data.login.decode(errors="replace")
            ok = self._users.get(login) == auth_data.password.decode(errors="replace")
        # handled=False: aiosmtpd then answers 535 itself instead of leaving the client hanging.
        return AuthResult(success=ok, handled=False)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 as Gmail answers it: `user=U^Aauth=Bearer T^A^A`; a refused token gets a JSON
        challenge, which the client answers with an empty line, then 535."""
        if self._oauth2_check is None:
            return AuthResult(
                success=False, handled=False, message="504 5.5.4 Unrecognized authentication type"
            )
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode base64")
        else:
            answer = await server.challenge_auth(b"")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)  # aborted; aiosmtpd has answered
            blob = answer
        fields = dict(
            part.split("=", 1) for part in blob.decode("utf-8", "replace").split("\x01") if "=" in part
        )
        user, bearer = fields.get("user", ""), fields.get("auth", "")
        token = bearer[7:] if bearer.startswith("Bearer ") else ""
        valid = bool(user and token) and await asyncio.to_thread(self._oauth2_check, user, token)
        if valid:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        if not isinstance(await server.challenge_auth(json.dumps(error)), bytes):
            return AuthResult(success=False, handled=True)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if (self._users is not None or self._oauth2_check is not None) and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        # Ask Dovecot now, so an unknown mailbox is refused at RCPT as a real server would do it; a known
        # one is not asked again (mailboxes are only added while the relay runs).
        if address not in self._known:
            code, text = await asyncio.to_thread(self._lmtp, envelope.mail_from or "", address, None)
            if code != 250:
                return f"{code} {text}"
            self._known.add(address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            fault = self._faults.pop() if self._faults else None
        if fault is not None:
            logger.info("smtp relay: injected failure %r", fault)
            return fault
        mail_from = envelope.mail_from or ""
        data = envelope.content if isinstance(envelope.content, bytes) else b""
        failures = []
        for rcpt in envelope.rcpt_tos:
            code, text = await asyncio.to_thread(self._lmtp, mail_from, rcpt, data)
            if code != 250:
                failures.append(f"{code} {text}")
        if failures:
            # One reply per DATA: report the first failure; recipients already delivered keep their copy.
            return failures[0]
        with self._lock:
            self._received.append(Received(mail_from, list(envelope.rcpt_tos), data, time.time()))
        return "250 OK delivered"

    def _lmtp(self, mail_from: str, rcpt: str, data: bytes | None) -> tuple[int, str]:
        """One LMTP transaction for one recipient (blocking); data=None only checks the recipient.

        One recipient per transaction because LMTP answers DATA once per recipient and smtplib reads one.
        """
        try:
            with smtplib.LMTP(self.lmtp_host, self.lmtp_port, timeout=30) as lmtp:
                lmtp.ehlo()
                code, reply = lmtp.mail(mail_from)
                if code == 250:
                    code, reply = lmtp.rcpt(rcpt)
                if code == 250 and data is not None:
                    code, reply = lmtp.data(data)
        except smtplib.SMTPResponseException as exc:
            error = exc.smtp_error
            code, reply = exc.smtp_code, error.encode() if isinstance(error, str) else error
        except (OSError, smtplib.SMTPException) as exc:
            logger.warning("smtp relay: lmtp %s:%d failed: %s", self.lmtp_host, self.lmtp_port, exc)
            return 451, f"4.4.1 LMTP delivery failed: {exc}"
        if data is not None and code == 250:
            logger.debug("smtp relay: delivered to %s", rcpt)
        return code, reply.decode(errors="replace")
