"""I/O: the steps of a connection before any mail protocol (name lookup, TCP, TLS and what the server's
certificate says), each on a connection of its own so that each can be timed and named; and why a
connection step failed, in words an administrator can act on. Used by `runtime.check`.
"""

from __future__ import annotations

import hashlib
import imaplib
import re
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.errors import ConfigError

__all__ = [
    "Certificate",
    "as_text",
    "certificate_of",
    "explain",
    "handshake",
    "resolve",
    "server_text",
    "tcp_connect",
]


@dataclass(frozen=True)
class Certificate:
    """The server's TLS certificate as the check saw it."""

    subject: str
    issuer: str
    expires: str | None
    """Its end of validity (ISO 8601, UTC), when it could be read."""
    verified: bool
    """False when `verify_certificates: false` let it through unchecked."""
    sha256: str


def resolve(host: str, port: int, timeout: float) -> tuple[None, str]:
    """getaddrinfo has no timeout of its own: it runs in a thread that is left behind when it hangs."""
    found: list[list[str] | OSError] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found.append(list(dict.fromkeys(str(info[4][0]) for info in infos)))
        except OSError as exc:
            found.append(exc)

    thread = threading.Thread(target=lookup, name="check-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        raise TimeoutError(f"no answer from the resolver within {timeout:g} s")
    if isinstance(found[0], OSError):
        raise found[0]
    return None, f"{host} is {', '.join(found[0])}"


def tcp_connect(host: str, port: int, timeout: float) -> tuple[None, str]:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        peer = sock.getpeername()
    return None, f"connected to {peer[0]}:{peer[1]}"


def handshake(host: str, port: int, timeout: float, context: ssl.SSLContext) -> tuple[Certificate, str]:
    with (
        socket.create_connection((host, port), timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=host) as secured,
    ):
        return certificate_of(secured, context)


def certificate_of(secured: ssl.SSLSocket, context: ssl.SSLContext) -> tuple[Certificate, str]:
    der = secured.getpeercert(binary_form=True) or b""
    verified = context.verify_mode is not ssl.CERT_NONE
    subject, issuer, expires = _read_certificate(der, secured.getpeercert() if verified else None)
    cert = Certificate(subject, issuer, expires, verified, hashlib.sha256(der).hexdigest())
    cipher = secured.cipher()
    detail = f"{secured.version()} {cipher[0] if cipher else ''}; certificate {subject}, issued by {issuer}"
    if expires:
        detail += f", valid until {expires[:16].replace('T', ' ')} UTC{_remaining(expires)}"
    detail += ", trusted" if verified else ", NOT verified (verify_certificates: false)"
    return cert, detail


def _remaining(expires: str) -> str:
    left = datetime.fromisoformat(expires) - datetime.now(UTC)
    if left.total_seconds() <= 0:
        return " (EXPIRED)"
    if left.days >= 30:
        return ""
    return f" (in {left.days} days)" if left.days >= 2 else f" (in {left.total_seconds() / 3600:.0f} hours)"


def _read_certificate(der: bytes, checked: dict[str, Any] | None) -> tuple[str, str, str | None]:
    """Subject, issuer and end of validity. The ssl module decodes a certificate only once it is
    verified; an unverified one is read with cryptography where it is installed."""
    try:
        from cryptography import x509
    except ImportError:
        if not checked:
            return "(not read without the cryptography package)", "(unknown)", None
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(checked["notAfter"]), UTC)
        return _name(checked.get("subject", ())), _name(checked.get("issuer", ())), expires.isoformat()
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_after_utc.isoformat()


_NAME_KEYS = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}


def _name(rdns: Any) -> str:
    return ",".join(f"{_NAME_KEYS.get(k, k)}={v}" for rdn in rdns for k, v in rdn) or "(empty)"


# Why a step failed, and what to do, from the exception it raised.

_SELF_SIGNED = (18, 19, 20, 21)
_NOT_TLS = ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


def explain(
    exc: BaseException, step: str, prefix: str, host: str, port: int, timeout: float
) -> tuple[str, str | None]:
    """What failed and what to do, from the exception a step raised; `prefix` names the settings (imap,
    smtp) the advice points at."""
    where = f"{host}:{port}"
    ports = (
        "IMAPS 993 with tls, IMAP 143 with starttls"
        if prefix == "imap"
        else "465 with tls, 587 with starttls"
    )
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = f"certificate verify failed: {exc.verify_message or exc.reason}"
        if exc.verify_code in _SELF_SIGNED:
            return detail, (
                f"the certificate is not signed by an authority this machine trusts: give the server one "
                f"that is; set {prefix}.verify_certificates: false only for test servers"
            )
        if exc.verify_code == 10:
            return detail, "the server's certificate has expired: its administrator must renew it"
        if exc.verify_code == 62:
            return detail, f"connect with a name the certificate is issued for ({prefix}.host), or fix it"
        return detail, f"fix the server's certificate; set {prefix}.verify_certificates: false only for tests"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        advice = None
        if any(mark in str(reason) for mark in _NOT_TLS):
            advice = f"the server does not speak TLS on port {port}: check {prefix}.security ({ports})"
        return f"TLS handshake failed: {reason}", advice
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
        exc = exc.__context__
    if isinstance(exc, TimeoutError):
        if step == "tcp":
            return f"no answer from {where} within {timeout:g} s", (
                f"the host is down or a firewall drops the connection: check {prefix}.host and {prefix}.port"
            )
        if step == "tls":
            return f"no TLS handshake within {timeout:g} s", (
                f"the port may not speak TLS from the first byte: check {prefix}.security ({ports})"
            )
        if step == "greeting":
            return f"connected, but the server said nothing within {timeout:g} s", (
                f"this port may not be a{'n IMAP' if prefix == 'imap' else 'n SMTP'} server, or it expects "
                f"TLS first: check {prefix}.port and {prefix}.security ({ports})"
            )
        return f"no answer within {timeout:g} s", "the server is slow or stuck: try again, or raise --timeout"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused: nothing listens on {where}", (
            f"check {prefix}.host and {prefix}.port ({ports})"
        )
    if isinstance(exc, socket.gaierror):
        return f"{host}: the name cannot be resolved ({exc.strerror})", (
            f"check {prefix}.host and this machine's DNS"
        )
    if isinstance(exc, ConfigError):
        return str(exc), f"fix the secret reference ({prefix}.password or {prefix}.oauth2)"
    if isinstance(exc, smtplib.SMTPConnectError):
        return f"the server turned the connection away: {exc.smtp_code} {as_text(exc.smtp_error)}", (
            "the server takes no mail from this host now (busy, or this address is refused)"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the server answered {exc.smtp_code} {as_text(exc.smtp_error)}", None
    if isinstance(exc, ConnectionError | EOFError | imaplib.IMAP4.abort | smtplib.SMTPServerDisconnected):
        return f"the server closed the connection: {exc}", None
    if isinstance(exc, imaplib.IMAP4.error):
        return f"the server answered: {server_text(str(exc))}", None
    return f"{type(exc).__name__}: {exc}", None


def as_text(value: object) -> str:
    """A server's bytes (or None) as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def server_text(answer: str) -> str:
    """A server's answer as imaplib words it (often the repr of bytes), as the server said it."""
    found = re.fullmatch(r"b(['\"])(.*)\1", answer.strip(), flags=re.S)
    return found.group(2) if found else answer
