"""What a failed connection step says and advises, from the exception it raised (no servers)."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl

import pytest

from runtime.probe import explain, server_text
from schemas.errors import ConfigError


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
    )
    exc.verify_code = code
    exc.verify_message = message
    return exc


def _smtp_timeout() -> smtplib.SMTPServerDisconnected:
    """smtplib words a read timeout as a lost connection; the timeout is its context."""
    try:
        try:
            raise TimeoutError("timed out")
        except TimeoutError as exc:
            raise smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from None
    except smtplib.SMTPServerDisconnected as wrapped:
        return wrapped


@pytest.mark.parametrize(
    ("exc", "step", "detail", "advice"),
    [
        (
            _verify_error(18, "self-signed certificate"),
            "tls",
            "certificate verify failed: self-signed certificate",
            "set imap.verify_certificates: false only for test servers",
        ),
        (
            _verify_error(10, "certificate has expired"),
            "starttls",
            "certificate verify failed: certificate has expired",
            "has expired: its administrator must renew it",
        ),
        (
            _verify_error(62, "Hostname mismatch, certificate is not valid for 'imap.acme.example'."),
            "tls",
            "certificate verify failed: Hostname mismatch",
            "a name the certificate is issued for (imap.host)",
        ),
        (
            ConnectionRefusedError(111, "Connection refused"),
            "tcp",
            "connection refused: nothing listens on imap.acme.example:993",
            "check imap.host and imap.port",
        ),
        (
            TimeoutError("timed out"),
            "tcp",
            "no answer from imap.acme.example:993 within 2 s",
            "a firewall drops the connection",
        ),
        (
            TimeoutError("timed out"),
            "greeting",
            "connected, but the server said nothing within 2 s",
            "may not be an IMAP server",
        ),
        (
            socket.gaierror(-2, "Name or service not known"),
            "dns",
            "imap.acme.example: the name cannot be resolved (Name or service not known)",
            "check imap.host",
        ),
        (
            ConfigError("environment variable SUPPORT_PW (a password reference) is not set"),
            "login",
            "environment variable SUPPORT_PW (a password reference) is not set",
            "fix the secret reference",
        ),
        (imaplib.IMAP4.abort("socket error: EOF"), "capabilities", "the server closed the connection", None),
    ],
)
def test_each_failure_is_worded_with_what_to_do(
    exc: BaseException, step: str, detail: str, advice: str | None
) -> None:
    said, what_to_do = explain(exc, step, "imap", "imap.acme.example", 993, 2.0)

    assert said.startswith(detail)
    if advice is None:
        assert what_to_do is None
    else:
        assert what_to_do is not None and advice in what_to_do


def test_plain_text_on_a_tls_port_is_named() -> None:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"

    said, what_to_do = explain(exc, "tls", "smtp", "smtp.acme.example", 587, 2.0)

    assert said == "TLS handshake failed: WRONG_VERSION_NUMBER"
    assert what_to_do == (
        "the server does not speak TLS on port 587: check smtp.security (465 with tls, 587 with starttls)"
    )


def test_a_silent_smtp_server_is_a_timeout_not_a_dropped_connection() -> None:
    said, what_to_do = explain(_smtp_timeout(), "greeting", "smtp", "smtp.acme.example", 25, 1.0)

    assert said == "connected, but the server said nothing within 1 s"
    assert what_to_do is not None and "may not be an SMTP server" in what_to_do


def test_an_smtp_server_turning_the_client_away_at_its_greeting() -> None:
    exc = smtplib.SMTPConnectError(554, b"5.7.1 go away")

    said, what_to_do = explain(exc, "greeting", "smtp", "smtp.acme.example", 25, 1.0)

    assert said == "the server turned the connection away: 554 5.7.1 go away"
    assert what_to_do is not None


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        ("b'[AUTHENTICATIONFAILED] Authentication failed.'", "[AUTHENTICATIONFAILED] Authentication failed."),
        ('b"it\'s refused"', "it's refused"),
        ("plain words", "plain words"),
    ],
)
def test_server_answers_lose_the_bytes_repr_imaplib_gives_them(answer: str, text: str) -> None:
    assert server_text(answer) == text
