"""What `mailroom mailboxes check` and `mailroom mailboxes status` print, from values (no servers)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from mailroom.cli import main
from mailroom.mailboxes import (
    check_json,
    latest_health,
    mailbox_statuses,
    render_check,
    render_status,
    status_json,
)
from runtime.check import CheckReport, Folder, MailboxCheck, Step
from schemas.events import FolderHealth, MailboxHealth, ReplyFailed
from tests.unit.builders import NOW, config, mailbox


def _imap(*steps: Step, folders: tuple[Folder, ...] = ()) -> CheckReport:
    return CheckReport("imap", "imap.acme.example", 993, "tls", "support", list(steps), folders=list(folders))


def _smtp(*steps: Step) -> CheckReport:
    return CheckReport("smtp", "smtp.acme.example", 587, "starttls", None, list(steps))


OK_STEPS = (Step("dns", True, "imap.acme.example is 192.0.2.1", 1.2), Step("tcp", True, "connected", 3.4))


def test_a_passing_check_shows_each_step_its_folders_and_that_both_servers_work() -> None:
    folders = (
        Folder("INBOX", ("\\HasNoChildren",), None, True, True, 12),
        Folder("Sent", ("\\Sent",), "\\Sent"),
    )
    check = MailboxCheck("support", _imap(*OK_STEPS, folders=folders), _smtp(*OK_STEPS))

    text = render_check(check)

    lines = text.splitlines()
    assert lines[0] == "Mailbox support"
    assert "IMAP imap.acme.example:993 (security tls) as support" in lines
    assert "SMTP smtp.acme.example:587 (security starttls)" in lines
    assert any(line.split()[:4] == ["ok", "tcp", "3", "connected"] for line in lines)
    assert any(line.split() == ["INBOX", "yes", "12"] for line in lines)
    assert any(line.split() == ["Sent", "\\Sent"] for line in lines)
    assert lines[-1] == "OK: both servers work for this mailbox"
    assert all(line == line.rstrip() for line in lines)


def test_a_failed_step_shows_what_to_do_and_ends_with_one_line_per_failed_server() -> None:
    refused = Step(
        "login", False, "login refused for support: bad", 5.0, "check imap.username and imap.password"
    )
    missing = Folder("Orders", configured=True, exists=False)
    check = MailboxCheck("support", _imap(*OK_STEPS, refused, folders=(missing,)), None)

    text = render_check(check)

    lines = text.splitlines()
    assert any(line.split()[:2] == ["FAILED", "login"] for line in lines)
    assert any(line.strip() == "what to do: check imap.username and imap.password" for line in lines)
    assert any(line.split() == ["Orders", "MISSING"] for line in lines)
    assert "SMTP" not in text
    assert lines[-2:] == [
        "FAILED",
        "  imap imap.acme.example:993 (tls): login failed: login refused for support: bad "
        "-- check imap.username and imap.password",
    ]


def test_the_json_of_a_check_has_every_step_and_the_verdicts() -> None:
    failed = Step("greeting", False, "connected, but the server said nothing within 1 s", 1000.0, "check")
    check = MailboxCheck("support", _imap(*OK_STEPS), _smtp(*OK_STEPS, failed))

    data = json.loads(check_json(check))

    assert data["mailbox_id"] == "support"
    assert data["ok"] is False
    assert data["imap"]["ok"] is True and data["imap"]["summary"] == "imap imap.acme.example:993 (tls): ok"
    assert [s["name"] for s in data["smtp"]["steps"]] == ["dns", "tcp", "greeting"]
    assert data["smtp"]["steps"][-1] == {
        "name": "greeting",
        "ok": False,
        "detail": "connected, but the server said nothing within 1 s",
        "elapsed_ms": 1000.0,
        "advice": "check",
    }


def test_a_check_without_steps_or_servers_is_not_ok() -> None:
    assert not _imap().ok
    assert not MailboxCheck("support", None, None).ok
    assert MailboxCheck("support", _imap(*OK_STEPS), None).ok


def _health(mailbox_id: str, state: str, minutes: int = 0, **fields: object) -> MailboxHealth:
    return MailboxHealth(
        event_id=f"{mailbox_id}-{minutes}",
        occurred_at=NOW + timedelta(minutes=minutes),
        mailbox_id=mailbox_id,
        organization="acme",
        state=state,  # type: ignore[arg-type]
        since=NOW + timedelta(minutes=minutes),
        owner="host-a:42",
        **fields,  # type: ignore[arg-type]
    )


def test_the_latest_record_of_each_key_wins_and_a_tombstone_forgets_its_key() -> None:
    other = ReplyFailed(
        event_id="x", occurred_at=NOW, reply_id="r", mailbox_id="support", reason="550", attempts=1
    )
    records = [
        (b"support", _health("support", "retrying", 0).to_bytes()),
        (b"sales", _health("sales", "ok", 0).to_bytes()),
        (b"support", _health("support", "ok", 5).to_bytes()),
        (b"sales", None),
        (b"junk", b"not json"),
        (b"other", other.to_bytes()),
    ]

    latest = latest_health(records)

    assert list(latest) == ["support"]
    assert (latest["support"].state, latest["support"].since) == ("ok", NOW + timedelta(minutes=5))


def test_statuses_follow_the_configuration_and_name_mailboxes_only_ingest_knows() -> None:
    cfg = config(mailbox(mailbox_id="support"), mailbox(mailbox_id="billing"))
    latest = {"support": _health("support", "ok"), "retired": _health("retired", "stopped")}

    rows = mailbox_statuses(cfg, latest)

    assert [(r.mailbox_id, r.state, r.configured) for r in rows] == [
        ("support", "ok", True),
        ("billing", "unknown", True),
        ("retired", "stopped", False),
    ]
    assert rows[1].organization == "acme" and rows[1].since is None


def test_the_status_grid_has_a_row_per_mailbox_with_errors_and_advice_below_it() -> None:
    inbox = FolderHealth(folder="INBOX", state="ok", waiting="idle", last_uid=9)
    archive = FolderHealth(folder="Archive", state="failing", error="no such folder")
    cfg = config(mailbox(mailbox_id="support"), mailbox(mailbox_id="sales"), mailbox(mailbox_id="billing"))
    latest = {
        "support": _health("support", "ok", last_letter_at=NOW + timedelta(hours=1), folders=(inbox,)),
        "sales": _health("sales", "failing", 3, error="login refused", advice="check imap.password"),
        "billing": _health("billing", "retrying", folders=(inbox, archive)),
        "retired": _health("retired", "stopped"),
    }

    text = render_status(mailbox_statuses(cfg, latest))

    lines = text.splitlines()
    assert lines[0].split() == [
        "MAILBOX",
        "ORGANIZATION",
        "STATE",
        "SINCE",
        "(UTC)",
        "LAST",
        "LETTER",
        "(UTC)",
        "FOLDERS",
        "OWNER",
    ]
    assert lines[1].split() == [
        "support",
        "acme",
        "ok",
        "2024-05-06",
        "07:08:09",
        "2024-05-06",
        "08:08:09",
        "INBOX",
        "idle",
        "host-a:42",
    ]
    assert lines[2].split()[:5] == ["sales", "acme", "failing", "2024-05-06", "07:11:09"]
    assert lines[3:5] == ["    error: login refused", "    what to do: check imap.password"]
    assert "INBOX idle, Archive failing" in lines[5]
    assert lines[6] == "    Archive: no such folder"
    assert lines[7].split()[:3] == ["retired", "acme", "stopped"]
    assert lines[8] == "    not in this configuration file"


def test_a_mailbox_ingest_never_reported_on_is_unknown_in_the_grid_and_the_json() -> None:
    rows = mailbox_statuses(config(mailbox(mailbox_id="support")), {})

    assert render_status(rows).splitlines()[1].split() == ["support", "acme", "unknown", "-", "-", "-", "-"]
    assert json.loads(status_json(rows)) == [
        {
            "mailbox_id": "support",
            "organization": "acme",
            "state": "unknown",
            "since": None,
            "last_letter_at": None,
            "folders": [],
            "error": None,
            "advice": None,
            "owner": "",
            "configured": True,
        }
    ]


def test_the_status_json_carries_times_in_iso_8601_and_the_folders() -> None:
    inbox = FolderHealth(folder="INBOX", state="ok", waiting="poll", last_uid=3)
    rows = mailbox_statuses(config(mailbox()), {"support": _health("support", "ok", folders=(inbox,))})

    (row,) = json.loads(status_json(rows))

    assert row["since"] == "2024-05-06T07:08:09+00:00"
    assert row["folders"] == [
        {"folder": "INBOX", "state": "ok", "waiting": "poll", "last_uid": 3, "error": None}
    ]


def test_no_mailboxes_at_all_says_so() -> None:
    assert render_status([]) == "no mailboxes configured, and ingest has reported none"


def test_checking_an_unknown_mailbox_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    box = {
        "id": "support",
        "organization": "acme",
        "label": "Support",
        "email": "support@acme.test",
        "imap": {"host": "127.0.0.1", "username": "support", "password": "imap-secret"},
        "smtp": {"host": "127.0.0.1"},
    }
    path = tmp_path / "mailroom.yaml"
    path.write_text(yaml.safe_dump({"mailboxes": [box]}))
    monkeypatch.setenv("MAILROOM_CONFIG", str(path))
    monkeypatch.setenv("MAILROOM_CONFIG_SOURCE", "file")

    code = main(["mailboxes", "check", "sales"])

    out = capsys.readouterr()
    assert code == 2
    assert out.out == ""
    assert out.err == f"mailroom mailboxes check: no mailbox 'sales' in {path} (known: support)\n"
