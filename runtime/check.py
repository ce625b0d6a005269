"""I/O: checks a mailbox's servers the way an administrator's "Check connection" button does, step by step:
DNS, TCP, TLS and its certificate, the greeting, capabilities, login and (IMAP) the folders. SMTP is
checked up to the login; no letter is ever sent.

Every step is timed and recorded; the first that fails ends the check with what failed and what to do
about it. `mailroom mailboxes check` prints the report; `CheckReport.to_json()` is its form for scripts.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from runtime.imap import close_imap, login_advice, tls_context
from runtime.probe import (
    Certificate,
    as_text,
    certificate_of,
    explain,
    handshake,
    resolve,
    server_text,
    tcp_connect,
)
from schemas.config import ImapSettings, Mailbox, Security, SmtpSettings, reveal
from schemas.errors import ConfigError

__all__ = [
    "IMAP_FEATURES",
    "SPECIAL_USE",
    "Certificate",
    "CheckReport",
    "Folder",
    "MailboxCheck",
    "Step",
    "check_imap",
    "check_mailbox",
    "check_smtp",
]

T = TypeVar("T")

IMAP_FEATURES = ("IDLE", "SPECIAL-USE", "UIDPLUS", "MOVE", "CONDSTORE")
"""The capabilities mailroom makes use of, reported after login."""
SMTP_FEATURES = ("STARTTLS", "AUTH", "SIZE", "SMTPUTF8", "8BITMIME")
SPECIAL_USE = ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged")
"""RFC 6154 folder roles."""


@dataclass(frozen=True)
class Step:
    """One step of a check: what was tried, whether it worked, what was seen, and how long it took."""

    name: str
    ok: bool
    detail: str
    elapsed_ms: float
    advice: str | None = None
    """What to do about a failed step."""


@dataclass(frozen=True)
class Folder:
    """A folder the server lists, or a configured one it does not."""

    name: str
    flags: tuple[str, ...] = ()
    special_use: str | None = None
    """Its RFC 6154 role (\\Sent, \\Drafts, ...), when the server marks one."""
    configured: bool = False
    """Named in the mailbox's `folders`: ingest reads it."""
    exists: bool = True
    messages: int | None = None
    """How many letters it holds (configured folders only)."""


@dataclass
class CheckReport:
    """The steps of one server's check, and what was learnt about the server on the way."""

    protocol: str
    host: str
    port: int
    security: str
    username: str | None
    steps: list[Step] = field(default_factory=list)
    certificate: Certificate | None = None
    features: dict[str, bool] = field(default_factory=dict)
    auth_mechanisms: tuple[str, ...] = ()
    folders: list[Folder] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def failed(self) -> Step | None:
        return next((step for step in self.steps if not step.ok), None)

    def summary(self) -> str:
        """One line: that the server is fine, or which step failed, why and what to do."""
        where = f"{self.protocol} {self.host}:{self.port} ({self.security})"
        failed = self.failed
        if failed is None:
            return f"{where}: ok"
        return f"{where}: {failed.name} failed: {failed.detail}" + (
            f" -- {failed.advice}" if failed.advice else ""
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok, "summary": self.summary()}


@dataclass(frozen=True)
class MailboxCheck:
    """A mailbox's IMAP and SMTP checks (None: not checked)."""

    mailbox_id: str
    imap: CheckReport | None
    smtp: CheckReport | None

    @property
    def ok(self) -> bool:
        reports = [r for r in (self.imap, self.smtp) if r is not None]
        return bool(reports) and all(r.ok for r in reports)

    def to_json(self) -> dict[str, Any]:
        return {
            "mailbox_id": self.mailbox_id,
            "ok": self.ok,
            "imap": self.imap.to_json() if self.imap else None,
            "smtp": self.smtp.to_json() if self.smtp else None,
        }


def check_mailbox(mailbox: Mailbox, timeout: float, *, imap: bool = True, smtp: bool = True) -> MailboxCheck:
    """Checks the mailbox's IMAP server (and its configured folders) and its SMTP server."""
    return MailboxCheck(
        mailbox.id,
        check_imap(mailbox.imap, timeout, mailbox.folders) if imap else None,
        check_smtp(mailbox.smtp, timeout) if smtp else None,
    )


def check_imap(settings: ImapSettings, timeout: float, folders: Sequence[str] = ("INBOX",)) -> CheckReport:
    """Connects, logs in and lists the folders; `folders` are the ones that must exist."""
    s = settings
    report = CheckReport("imap", s.host, s.port, str(s.security), s.username)
    run = _Run(report, "imap", timeout)
    context = tls_context(s.verify_certificates)
    client: IMAPClient | None = None
    try:
        run.step("dns", lambda: resolve(s.host, s.port, timeout))
        run.step("tcp", lambda: tcp_connect(s.host, s.port, timeout))
        if s.security is Security.TLS:
            report.certificate = run.step("tls", lambda: handshake(s.host, s.port, timeout, context))

        def greeting() -> tuple[IMAPClient, str]:
            made = IMAPClient(
                s.host, port=s.port, ssl=s.security is Security.TLS, ssl_context=context, timeout=timeout
            )
            made.normalise_times = False
            return made, re.sub(r"\[CAPABILITY [^]]*\]\s*", "", as_text(made.welcome))

        client = run.step("greeting", greeting)
        connected = client
        before = run.step("capabilities", lambda: _imap_capabilities(connected, report))
        if s.security is Security.STARTTLS:
            report.certificate = run.step("starttls", lambda: _imap_starttls(connected, before, context))
        run.step("login", lambda: _imap_login(connected, s, before))
        run.step("capabilities after login", lambda: _imap_features(connected, report))
        run.step("folders", lambda: _imap_folders(connected, folders, report))
    except _Stop:
        pass
    finally:
        close_imap(client)
    return report


def check_smtp(settings: SmtpSettings, timeout: float) -> CheckReport:
    """Connects, says EHLO, upgrades to TLS as configured and logs in when credentials are set; sends
    nothing."""
    s = settings
    report = CheckReport("smtp", s.host, s.port, str(s.security), s.username)
    run = _Run(report, "smtp", timeout)
    context = tls_context(s.verify_certificates)
    conn: smtplib.SMTP | None = None
    try:
        run.step("dns", lambda: resolve(s.host, s.port, timeout))
        run.step("tcp", lambda: tcp_connect(s.host, s.port, timeout))
        if s.security is Security.TLS:
            report.certificate = run.step("tls", lambda: handshake(s.host, s.port, timeout, context))

        def greeting() -> tuple[smtplib.SMTP, str]:
            made: _SMTP | _SMTPS
            if s.security is Security.TLS:
                made = _SMTPS(s.host, s.port, timeout=timeout, context=context)
            else:
                made = _SMTP(s.host, s.port, timeout=timeout)
            return made, made.greeting

        conn = run.step("greeting", greeting)
        connected = conn
        run.step("ehlo", lambda: _smtp_ehlo(connected, report))
        if s.security is Security.STARTTLS:
            report.certificate = run.step("starttls", lambda: _smtp_starttls(connected, context))
            run.step("ehlo after starttls", lambda: _smtp_ehlo(connected, report))
        run.step("login", lambda: _smtp_login(connected, s, report))
    except _Stop:
        pass
    finally:
        _smtp_close(conn)
    return report


class _Stop(Exception):
    """A step failed: the check ends there."""


class _Failed(Exception):
    """A step's own verdict that it failed, with what to do."""

    def __init__(self, detail: str, advice: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.advice = advice


class _Run:
    """Times each step and records it; a failed step is recorded with advice, then stops the check."""

    def __init__(self, report: CheckReport, prefix: str, timeout: float) -> None:
        self.report = report
        self.prefix = prefix
        self.timeout = timeout

    def step(self, name: str, action: Callable[[], tuple[T, str]]) -> T:
        start = time.perf_counter()
        try:
            value, detail = action()
        except _Failed as exc:
            failure = exc.detail, exc.advice
        except (OSError, imaplib.IMAP4.error, ConfigError) as exc:
            failure = explain(exc, name, self.prefix, self.report.host, self.report.port, self.timeout)
        else:
            self.report.steps.append(Step(name, True, detail, _ms(start)))
            return value
        self.report.steps.append(Step(name, False, failure[0], _ms(start), failure[1]))
        raise _Stop


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


# IMAP steps.


def _imap_capabilities(client: IMAPClient, report: CheckReport) -> tuple[tuple[bytes, ...], str]:
    caps = tuple(bytes(c).upper() for c in client.capabilities())
    report.auth_mechanisms = tuple(c[5:].decode() for c in caps if c.startswith(b"AUTH="))
    return caps, " ".join(c.decode() for c in caps)


def _imap_starttls(
    client: IMAPClient, capabilities: tuple[bytes, ...], context: ssl.SSLContext
) -> tuple[Certificate, str]:
    if b"STARTTLS" not in capabilities:
        raise _Failed(
            "the server does not offer STARTTLS",
            "set imap.security: tls (IMAPS, usually port 993), or none for a test server on loopback",
        )
    client.starttls(context)
    return certificate_of(client.socket(), context)


def _imap_login(client: IMAPClient, s: ImapSettings, capabilities: tuple[bytes, ...]) -> tuple[None, str]:
    try:
        if s.auth == "xoauth2":
            from runtime.oauth2 import imap_access_token

            client.oauth2_login(s.username, imap_access_token(s))
        else:
            assert s.password is not None  # the model requires it for password logins
            client.login(s.username, reveal(s.password))
    except LoginError as exc:
        answer = server_text(str(exc))
        advice = login_advice(answer, capabilities, s.auth)
        if b"LOGINDISABLED" in capabilities and s.security is Security.NONE:
            advice = "the server takes no login before TLS: set imap.security: starttls (or tls on port 993)"
        raise _Failed(f"login refused for {s.username}: {answer}", advice) from None
    return None, f"logged in as {s.username} ({'XOAUTH2' if s.auth == 'xoauth2' else 'password'})"


def _imap_features(client: IMAPClient, report: CheckReport) -> tuple[None, str]:
    caps = {bytes(c).upper() for c in client.capabilities()}
    report.features = {name: name.encode() in caps for name in IMAP_FEATURES}
    detail = ", ".join(f"{name} {'yes' if there else 'no'}" for name, there in report.features.items())
    if not report.features["IDLE"]:
        detail += " (without IDLE, ingest polls for new letters)"
    return None, detail


def _imap_folders(client: IMAPClient, wanted: Sequence[str], report: CheckReport) -> tuple[None, str]:
    listed = client.list_folders()
    separator = next((as_text(delim) for _, delim, _ in listed if delim), "/")
    names = [str(name) for _, _, name in listed]

    def listed_as(name: str) -> str | None:
        if name.upper() == "INBOX":  # the one name that is case-insensitive (RFC 3501)
            return next((n for n in names if n.upper() == "INBOX"), None)
        return name if name in names else None

    configured = {listed_as(name) for name in wanted} - {None}
    for flags, _, name in listed:
        texts = tuple(as_text(f) for f in flags)
        special = next((f for f in SPECIAL_USE for t in texts if t.lower() == f.lower()), None)
        messages = None
        if name in configured and "\\noselect" not in (t.lower() for t in texts):
            messages = int(client.folder_status(name, [b"MESSAGES"]).get(b"MESSAGES", 0))
        report.folders.append(Folder(str(name), texts, special, name in configured, True, messages))
    missing = [name for name in wanted if listed_as(name) is None]
    report.folders.extend(Folder(name, configured=True, exists=False) for name in missing)
    unusable = [f.name for f in report.folders if f.configured and f.exists and f.messages is None]
    if missing or unusable:
        problems = [f"{name!r} does not exist" for name in missing]
        problems += [f"{name!r} cannot be opened (\\Noselect)" for name in unusable]
        raise _Failed(
            "configured folder " + ", ".join(problems) + f"; the server has: {', '.join(names)}",
            f"fix the mailbox's folders: names as the server lists them, case and separator "
            f"({separator!r}) included",
        )
    roles = ", ".join(f"{f.name} {f.special_use}" for f in report.folders if f.special_use)
    found = ", ".join(f"{f.name} ({f.messages} letters)" for f in report.folders if f.configured)
    return None, f"{len(listed)} folders; reads {found}" + (f"; roles: {roles}" if roles else "")


# SMTP steps.


class _SMTP(smtplib.SMTP):
    """smtplib's client, keeping the server's greeting (smtplib reads it and drops it)."""

    greeting = ""

    def connect(
        self, host: str = "localhost", port: int = 0, source_address: Any = None
    ) -> tuple[int, bytes]:
        code, text = super().connect(host, port, source_address)
        self.greeting = f"{code} {as_text(text)}"
        return code, text


class _SMTPS(_SMTP, smtplib.SMTP_SSL):
    """The same over TLS from the first byte."""


def _smtp_ehlo(conn: smtplib.SMTP, report: CheckReport) -> tuple[None, str]:
    code, text = conn.ehlo()
    if code != 250:
        raise _Failed(
            f"EHLO refused: {code} {as_text(text)}", "the server does not speak ESMTP to this client"
        )
    features = conn.esmtp_features
    report.features = {name: name.lower() in features for name in SMTP_FEATURES}
    report.auth_mechanisms = tuple(features.get("auth", "").upper().split())
    parts = []
    for name in SMTP_FEATURES:
        value = features.get(name.lower())
        parts.append(f"{name} {value.strip() or 'yes'}" if value is not None else f"{name} no")
    return None, ", ".join(parts)


def _smtp_starttls(conn: smtplib.SMTP, context: ssl.SSLContext) -> tuple[Certificate, str]:
    if not conn.has_extn("starttls"):
        raise _Failed(
            "the server does not offer STARTTLS",
            "set smtp.security: tls (SMTPS, usually port 465), or none for a test server on loopback",
        )
    conn.starttls(context=context)
    assert isinstance(conn.sock, ssl.SSLSocket)
    return certificate_of(conn.sock, context)


def _smtp_login(conn: smtplib.SMTP, s: SmtpSettings, report: CheckReport) -> tuple[None, str]:
    if not s.username or (s.password is None and s.oauth2 is None):
        return None, "skipped: no smtp.username with a password or oauth2, so replies are sent without login"
    if not conn.has_extn("auth"):
        raise _Failed(
            "the server offers no AUTH on this connection",
            "use smtp.security: starttls or tls if it offers AUTH only over TLS, or remove smtp.username",
        )
    try:
        if s.oauth2 is not None:
            from runtime.oauth2 import smtp_access_token

            token = smtp_access_token(s)
            secret = f"user={s.username}\1auth=Bearer {token}\1\1"
            conn.auth("XOAUTH2", lambda challenge=None: secret if challenge is None else "")
            how = "XOAUTH2"
        else:
            assert s.password is not None
            conn.login(s.username, reveal(s.password))
            how = "password"
    except smtplib.SMTPAuthenticationError as exc:
        answer = f"{exc.smtp_code} {as_text(exc.smtp_error)}"
        if s.oauth2 is not None:
            advice = (
                "the server refused the OAuth2 token: check the account, the token's scope and its source"
            )
        elif {"XOAUTH2", "OAUTHBEARER"} & set(report.auth_mechanisms):
            advice = "check smtp.username and smtp.password, or log in with OAuth2 (smtp.oauth2)"
        else:
            advice = "check smtp.username and smtp.password"
        raise _Failed(f"login refused for {s.username}: {answer}", advice) from None
    return None, f"logged in as {s.username} ({how})"


def _smtp_close(conn: smtplib.SMTP | None) -> None:
    if conn is None:
        return
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()
