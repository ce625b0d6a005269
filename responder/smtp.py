"""I/O edge: sends replies over a mailbox's SMTP server, one reused connection per mailbox.

Errors are wrapped as SmtpError with the server's code and text: 4xx and network drops are retriable,
5xx and a refused login are not.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from responder.errors import SmtpError
from schemas.config import SmtpSecurity, SmtpSettings, reveal

__all__ = ["SmtpSender"]

logger = logging.getLogger(__name__)


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
        if s.security is SmtpSecurity.STARTTLS:
            conn.starttls(context=self._context())
        if s.username and s.password is not None:
            conn.login(s.username, reveal(s.password))
        return conn

    def send(self, message: EmailMessage, envelope_from: str, recipients: list[str]) -> None:
        """Sends once; a connection found dropped before the first command is reopened once."""
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn = self._connect()
                refused = self._conn.send_message(message, from_addr=envelope_from, to_addrs=recipients)
            except smtplib.SMTPServerDisconnected as exc:
                self.close()
                if attempt == 1:
                    continue
                raise SmtpError(f"{self._where()}: connection lost: {exc}") from exc
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                raise self._refused(int(code), text) from exc
            except smtplib.SMTPAuthenticationError as exc:
                self.close()
                raise SmtpError(
                    f"{self._where()}: login refused", exc.smtp_code, _text(exc.smtp_error), retriable=False
                ) from exc
            except smtplib.SMTPResponseException as exc:
                self._reset()
                raise self._refused(exc.smtp_code, exc.smtp_error) from exc
            except (smtplib.SMTPException, OSError) as exc:
                self.close()
                raise SmtpError(f"{self._where()}: {type(exc).__name__}: {exc}") from exc
            if refused:
                logger.warning("%s: some recipients refused: %s", self._where(), sorted(refused))
            return

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


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
