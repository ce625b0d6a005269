"""Integration: `mailroom mailboxes check` against real Dovecot and SMTP servers (plain, STARTTLS, TLS),
and `mailroom mailboxes status` against a real Kafka broker."""

from __future__ import annotations

import json
import re
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message
from deploy.local.ports import free_port
from deploy.local.smtp import SmtpRelay
from deploy.local.tls import self_signed, server_context
from mailroom.admin import create_topics
from mailroom.cli import main
from runtime.imap import close_imap, open_imap
from runtime.settings import KafkaSettings
from schemas import topics
from schemas.config import ImapSettings
from schemas.events import FolderHealth, MailboxHealth
from tests.fixtures_mail import MailUser
from tests.unit.builders import NOW

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MakeUser = Callable[..., MailUser]
IMAP_STEPS = ["dns", "tcp", "greeting", "capabilities", "login", "capabilities after login", "folders"]
SELF_SIGNED = re.compile(r"^certificate verify failed: self[- ]signed certificate")


@pytest.fixture(scope="module")
def tls_dovecot() -> Iterator[Dovecot]:
    with Dovecot(tls=True) as server:
        yield server


@pytest.fixture(scope="module")
def certificate() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(prefix="mailroom-tls-") as directory:
        yield self_signed(Path(directory))


class Cli:
    """Writes a configuration with one mailbox, `support`, and runs `mailroom mailboxes ...` in-process."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.path = tmp_path / "mailroom.yaml"
        self.capsys = capsys
        monkeypatch.setenv("MAILROOM_CONFIG", str(self.path))
        monkeypatch.setenv("MAILROOM_CONFIG_SOURCE", "file")  # the mailboxes of this file, not a topic's

    def configure(self, imap: dict[str, Any], smtp: dict[str, Any], **mailbox: Any) -> None:
        box = {
            "id": "support",
            "organization": "acme",
            "label": "Acme Support",
            "email": "support@acme.test",
            "imap": imap,
            "smtp": smtp,
            **mailbox,
        }
        self.path.write_text(yaml.safe_dump({"mailboxes": [box]}))

    def run(self, *args: str) -> tuple[int, str, str]:
        code = main(["mailboxes", *args])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def check(self, *args: str) -> tuple[int, dict[str, Any]]:
        code, out, _ = self.run("check", "support", "--json", *args)
        return code, json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path, monkeypatch, capsys)


def _imap(server: Dovecot, user: MailUser, **settings: Any) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.imap_port,
        "security": "none",
        "username": user.address,
        "password": user.password,
        **settings,
    }


def _smtp(relay: SmtpRelay, **settings: Any) -> dict[str, Any]:
    return {"host": relay.host, "port": relay.port, "security": "none", **settings}


def _letter(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "ann@customer.test"
    msg["To"] = to
    msg["Subject"] = "Hello"
    msg.set_content("Hi.")
    return msg.as_bytes()


def _steps(report: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(step["name"], step["ok"]) for step in report["steps"]]


def test_a_working_mailbox_passes_every_step_and_its_folders_are_listed_with_their_roles(
    cli: Cli, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory("support")
    append_message(dovecot.host, dovecot.imap_port, user.address, user.password, _letter(user.address))
    cli.configure(_imap(dovecot, user), _smtp(smtp_relay))

    code, report = cli.check()
    table_code, table, _ = cli.run("check", "support")

    assert code == 0 and report["ok"] is True
    imap, smtp = report["imap"], report["smtp"]
    assert _steps(imap) == [(name, True) for name in IMAP_STEPS]
    assert imap["features"] == {
        "IDLE": True,
        "SPECIAL-USE": True,
        "UIDPLUS": True,
        "MOVE": True,
        "CONDSTORE": True,
    }
    roles = {f["name"]: f["special_use"] for f in imap["folders"]}
    assert roles == {
        "INBOX": None,
        "Sent": "\\Sent",
        "Drafts": "\\Drafts",
        "Trash": "\\Trash",
        "Junk": "\\Junk",
    }
    inbox = next(f for f in imap["folders"] if f["name"] == "INBOX")
    assert (inbox["configured"], inbox["exists"], inbox["messages"]) == (True, True, 1)
    assert _steps(smtp) == [("dns", True), ("tcp", True), ("greeting", True), ("ehlo", True), ("login", True)]
    assert smtp["steps"][2]["detail"].startswith("220 ")
    assert smtp["features"]["8BITMIME"] is True and smtp["features"]["STARTTLS"] is False
    assert smtp["steps"][-1]["detail"].startswith("skipped")  # no username: replies go out without login
    assert all(step["elapsed_ms"] >= 0 for step in imap["steps"] + smtp["steps"])
    assert table_code == 0
    assert "OK: both servers work for this mailbox" in table
    assert re.search(r"^\s+Sent\s+\\Sent\s*$", table, re.M)
    assert re.search(r"^\s+INBOX\s+yes\s+1$", table, re.M)
    assert user.password not in table + json.dumps(report)


def test_a_wrong_password_fails_the_login_step_with_advice(
    cli: Cli, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory("support")
    cli.configure(_imap(dovecot, user, password="not-the-password-4711"), _smtp(smtp_relay))

    code, report = cli.check("--imap-only")
    table_code, table, _ = cli.run("check", "support", "--imap-only")

    assert code == 1 and table_code == 1
    assert report["smtp"] is None
    assert _steps(report["imap"])[-1] == ("login", False)
    failed = report["imap"]["steps"][-1]
    assert "login refused" in failed["detail"] and "Authentication failed" in failed["detail"]
    assert "check imap.username and imap.password" in failed["advice"]
    assert re.search(r"^\s+FAILED\s+login\s", table, re.M)
    assert "what to do: check imap.username and imap.password" in table
    assert "not-the-password-4711" not in table + json.dumps(report)


def test_a_port_where_nothing_listens_fails_the_tcp_step(cli: Cli, mail_user_factory: MakeUser) -> None:
    user = mail_user_factory()
    port = free_port()
    cli.configure(
        {**_imap_at("127.0.0.1", port, user)}, {"host": "127.0.0.1", "port": port, "security": "none"}
    )

    code, report = cli.check()

    assert code == 1
    for protocol in ("imap", "smtp"):
        assert _steps(report[protocol]) == [("dns", True), ("tcp", False)]
        assert (
            report[protocol]["steps"][-1]["detail"]
            == f"connection refused: nothing listens on 127.0.0.1:{port}"
        )
        assert f"check {protocol}.host and {protocol}.port" in report[protocol]["steps"][-1]["advice"]


def _imap_at(host: str, port: int, user: MailUser) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "security": "none",
        "username": user.address,
        "password": user.password,
    }


def test_a_server_that_accepts_but_never_greets_fails_the_greeting_step_within_the_timeout(
    cli: Cli, mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory()
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        cli.configure(
            _imap_at("127.0.0.1", port, user), {"host": "127.0.0.1", "port": port, "security": "none"}
        )
        started = time.monotonic()
        code, report = cli.check("--timeout", "1")
        took = time.monotonic() - started

    assert code == 1
    assert took < 6
    for protocol in ("imap", "smtp"):
        assert _steps(report[protocol]) == [("dns", True), ("tcp", True), ("greeting", False)]
        greeting = report[protocol]["steps"][-1]
        assert greeting["detail"] == "connected, but the server said nothing within 1 s"
        assert 900 <= greeting["elapsed_ms"] < 3000
        assert f"check {protocol}.port and {protocol}.security" in greeting["advice"]


@pytest.mark.parametrize(("security", "tls_step"), [("starttls", "starttls"), ("tls", "tls")])
def test_tls_and_starttls_work_when_certificates_are_not_checked(
    cli: Cli, tls_dovecot: Dovecot, smtp_relay: SmtpRelay, security: str, tls_step: str
) -> None:
    user = MailUser(f"tls-{secrets.token_hex(4)}@mailroom.test", secrets.token_urlsafe(12))
    tls_dovecot.add_user(user.address, user.password)
    port = tls_dovecot.imaps_port if security == "tls" else tls_dovecot.imap_port
    cli.configure(
        _imap(tls_dovecot, user, port=port, security=security, verify_certificates=False), _smtp(smtp_relay)
    )

    code, report = cli.check("--imap-only")

    assert code == 0
    imap = report["imap"]
    assert all(ok for _, ok in _steps(imap))
    assert tls_step in [name for name, _ in _steps(imap)]
    assert imap["certificate"]["subject"] == "CN=127.0.0.1"
    assert imap["certificate"]["verified"] is False
    assert imap["certificate"]["expires"] is not None
    step = next(s for s in imap["steps"] if s["name"] == tls_step)
    assert step["detail"].startswith("TLSv1.")
    assert "NOT verified (verify_certificates: false)" in step["detail"]
    if security == "starttls":
        # STARTTLS is offered before the upgrade and no longer after it.
        before = next(s for s in imap["steps"] if s["name"] == "capabilities")
        assert "STARTTLS" in before["detail"].split()


@pytest.mark.parametrize(("security", "tls_step"), [("starttls", "starttls"), ("tls", "tls")])
def test_a_self_signed_certificate_fails_when_certificates_are_checked(
    cli: Cli, tls_dovecot: Dovecot, smtp_relay: SmtpRelay, security: str, tls_step: str
) -> None:
    user = MailUser(f"tls-{secrets.token_hex(4)}@mailroom.test", secrets.token_urlsafe(12))
    tls_dovecot.add_user(user.address, user.password)
    port = tls_dovecot.imaps_port if security == "tls" else tls_dovecot.imap_port
    cli.configure(_imap(tls_dovecot, user, port=port, security=security), _smtp(smtp_relay))

    code, report = cli.check("--imap-only")
    _, table, _ = cli.run("check", "support", "--imap-only")

    assert code == 1
    failed = report["imap"]["steps"][-1]
    assert (failed["name"], failed["ok"]) == (tls_step, False)
    assert SELF_SIGNED.match(failed["detail"]), failed["detail"]
    assert "set imap.verify_certificates: false only for test servers" in failed["advice"]
    assert "login" not in [name for name, _ in _steps(report["imap"])]
    summary = table.strip().splitlines()[-1]
    assert f"{tls_step} failed: certificate verify failed" in summary
    assert "verify_certificates: false only for test servers" in summary


def test_a_configured_folder_that_does_not_exist_fails_the_folders_step(
    cli: Cli, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory()
    cli.configure(_imap(dovecot, user), _smtp(smtp_relay), folders=["inbox", "Support/Orders"])

    code, report = cli.check("--imap-only")

    assert code == 1
    imap = report["imap"]
    assert _steps(imap)[-1] == ("folders", False)
    assert "'Support/Orders' does not exist" in imap["steps"][-1]["detail"]
    assert "separator ('/')" in imap["steps"][-1]["advice"]
    configured = {(f["name"], f["exists"]) for f in imap["folders"] if f["configured"]}
    assert configured == {("INBOX", True), ("Support/Orders", False)}  # INBOX matches in any case


def test_open_imap_logs_in_over_starttls(tls_dovecot: Dovecot) -> None:
    address, password = f"st-{secrets.token_hex(4)}@mailroom.test", secrets.token_urlsafe(12)
    tls_dovecot.add_user(address, password)
    settings = ImapSettings(
        host=tls_dovecot.host,
        port=tls_dovecot.imap_port,
        security="starttls",
        username=address,
        password=password,
        verify_certificates=False,
    )

    client = open_imap(settings, timeout=10)
    try:
        assert isinstance(client.socket(), ssl.SSLSocket)
        assert "INBOX" in [name for _, _, name in client.list_folders()]
    finally:
        close_imap(client)


SMTP_USERS = {"support@acme.test": "smtp-pass-0815"}


@pytest.mark.parametrize(
    ("tls", "security", "steps"),
    [
        ("none", "none", ["dns", "tcp", "greeting", "ehlo", "login"]),
        (
            "starttls",
            "starttls",
            ["dns", "tcp", "greeting", "ehlo", "starttls", "ehlo after starttls", "login"],
        ),
        ("implicit", "tls", ["dns", "tcp", "tls", "greeting", "ehlo", "login"]),
    ],
)
def test_smtp_logs_in_over_each_kind_of_connection_and_sends_nothing(
    cli: Cli,
    dovecot: Dovecot,
    certificate: tuple[Path, Path],
    mail_user_factory: MakeUser,
    tls: Any,
    security: str,
    steps: list[str],
) -> None:
    user = mail_user_factory()
    context = server_context(*certificate) if tls != "none" else None
    with SmtpRelay(dovecot.host, dovecot.lmtp_port, users=SMTP_USERS, tls=tls, tls_context=context) as relay:
        smtp = _smtp(relay, security=security, username="support@acme.test", password="smtp-pass-0815")
        cli.configure(_imap(dovecot, user), {**smtp, "verify_certificates": False})
        code, report = cli.check("--smtp-only")
        received = relay.received

    assert code == 0, report["smtp"]["summary"]
    assert report["imap"] is None
    assert _steps(report["smtp"]) == [(name, True) for name in steps]
    assert report["smtp"]["steps"][-1]["detail"] == "logged in as support@acme.test (password)"
    assert "PLAIN" in report["smtp"]["auth_mechanisms"]
    if tls != "none":
        assert report["smtp"]["certificate"]["subject"] == "CN=127.0.0.1"
    assert received == []


def test_smtp_reports_a_refused_login_and_an_untrusted_certificate(
    cli: Cli, dovecot: Dovecot, certificate: tuple[Path, Path], mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory()
    context = server_context(*certificate)
    with SmtpRelay(
        dovecot.host, dovecot.lmtp_port, users=SMTP_USERS, tls="starttls", tls_context=context
    ) as relay:
        smtp = _smtp(relay, security="starttls", username="support@acme.test", password="wrong-password")
        cli.configure(_imap(dovecot, user), {**smtp, "verify_certificates": False})
        refused_code, refused = cli.check("--smtp-only")
        cli.configure(_imap(dovecot, user), {**smtp, "password": "smtp-pass-0815"})
        untrusted_code, untrusted = cli.check("--smtp-only")

    assert refused_code == 1
    login = refused["smtp"]["steps"][-1]
    assert (login["name"], login["ok"]) == ("login", False)
    assert login["detail"].startswith("login refused for support@acme.test: 535")
    assert login["advice"].startswith("check smtp.username and smtp.password")
    assert untrusted_code == 1
    starttls = untrusted["smtp"]["steps"][-1]
    assert (starttls["name"], starttls["ok"]) == ("starttls", False)
    assert SELF_SIGNED.match(starttls["detail"]), starttls["detail"]
    assert "smtp.verify_certificates: false only for test servers" in starttls["advice"]


# `mailroom mailboxes status`


@pytest.fixture
def kafka(kafka_servers: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[KafkaSettings]:
    settings = KafkaSettings(
        bootstrap_servers=kafka_servers, partitions=2, namespace=f"mbs{secrets.token_hex(4)}"
    )
    create_topics(settings)
    monkeypatch.setenv("MAILROOM_KAFKA_BOOTSTRAP_SERVERS", kafka_servers)
    monkeypatch.setenv("MAILROOM_KAFKA_NAMESPACE", settings.namespace)
    yield settings
    admin = KafkaAdminClient(bootstrap_servers=kafka_servers)
    try:
        admin.delete_topics([settings.topic(spec) for spec in topics.ALL_TOPICS])
    finally:
        admin.close()


def _health(mailbox_id: str, state: str, minutes: int, **fields: Any) -> MailboxHealth:
    return MailboxHealth(
        event_id=f"{mailbox_id}-{minutes}",
        occurred_at=NOW + timedelta(minutes=minutes),
        mailbox_id=mailbox_id,
        organization="acme",
        state=state,  # type: ignore[arg-type]
        since=NOW + timedelta(minutes=minutes),
        owner="ingest-1:4711",
        **fields,
    )


def test_status_shows_each_configured_mailbox_with_its_latest_health(
    cli: Cli, kafka: KafkaSettings, dovecot: Dovecot, mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory()
    boxes = [
        {
            "id": box,
            "organization": "acme",
            "label": box,
            "email": f"{box}@acme.test",
            "imap": _imap(dovecot, user),
            "smtp": {"host": "127.0.0.1"},
        }
        for box in ("support", "sales", "billing")
    ]
    cli.path.write_text(yaml.safe_dump({"mailboxes": boxes}))
    records: list[tuple[str, MailboxHealth | None]] = [
        ("support", _health("support", "retrying", 0, error="connection reset")),
        ("sales", _health("sales", "failing", 1, error="login refused", advice="check imap.password")),
        (
            "support",
            _health(
                "support",
                "ok",
                2,
                last_letter_at=NOW + timedelta(minutes=3),
                folders=(FolderHealth(folder="INBOX", state="ok", waiting="idle", last_uid=7),),
            ),
        ),
        ("gone", _health("gone", "ok", 0)),
        ("gone", None),  # the mailbox's record was deleted from the compacted topic
    ]
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for key, event in records:
        value = event.to_bytes() if event is not None else None
        producer.send(kafka.topic(topics.INGEST_HEALTH), key=key.encode(), value=value).get(timeout=30)
    producer.close()

    code, out, _ = cli.run("status", "--json")
    table_code, table, _ = cli.run("status")

    assert code == 0 and table_code == 0
    rows = {row["mailbox_id"]: row for row in json.loads(out)}
    assert list(rows) == ["support", "sales", "billing"]
    support, sales, billing = rows["support"], rows["sales"], rows["billing"]
    assert (support["state"], support["error"], support["owner"]) == ("ok", None, "ingest-1:4711")
    assert support["since"] == (NOW + timedelta(minutes=2)).isoformat()
    assert support["last_letter_at"] == (NOW + timedelta(minutes=3)).isoformat()
    assert support["folders"] == [
        {"folder": "INBOX", "state": "ok", "waiting": "idle", "last_uid": 7, "error": None}
    ]
    assert (sales["state"], sales["error"], sales["advice"]) == (
        "failing",
        "login refused",
        "check imap.password",
    )
    assert (billing["state"], billing["since"], billing["folders"]) == ("unknown", None, [])
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["MAILBOX", "ORGANIZATION", "STATE"]
    assert re.search(r"^support\s+acme\s+ok\s+.*INBOX idle\s+ingest-1:4711$", table, re.M)
    assert "    what to do: check imap.password" in lines
    assert re.search(r"^billing\s+acme\s+unknown\s", table, re.M)
    assert "gone" not in table


def test_status_says_so_when_kafka_cannot_be_reached(
    cli: Cli, dovecot: Dovecot, mail_user_factory: MakeUser
) -> None:
    cli.configure(_imap(dovecot, mail_user_factory()), {"host": "127.0.0.1"})
    env = {
        "PATH": "/usr/bin:/bin",
        "MAILROOM_CONFIG": str(cli.path),
        "MAILROOM_CONFIG_SOURCE": "file",
        "MAILROOM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    }

    # In a process of its own, as an operator runs it (kafka-python leaves the sockets of a failed
    # bootstrap for the garbage collector, which pytest would report).
    done = subprocess.run(
        [sys.executable, "-m", "mailroom", "mailboxes", "status", "--timeout", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"mailroom mailboxes status: Kafka at {env['MAILROOM_KAFKA_BOOTSTRAP_SERVERS']}: ")
