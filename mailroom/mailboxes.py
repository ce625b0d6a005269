"""Pure: what the operators' mailbox commands print, a table for people and JSON for scripts.

    mailroom mailboxes check ID [--json]   each step of connecting to the mailbox's IMAP and SMTP servers
    mailroom mailboxes status [--json]     how reading each mailbox goes, as ingest last reported it

The command line reads the servers and the health topic; these functions only turn what it read into text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailroom.tables import table, utc_text
from schemas.config import MailroomConfig
from schemas.errors import EventError
from schemas.events import FolderHealth, MailboxHealth, event_type_of, parse_event

if TYPE_CHECKING:
    from runtime.check import CheckReport, MailboxCheck

__all__ = [
    "MailboxStatus",
    "check_json",
    "latest_health",
    "mailbox_statuses",
    "render_check",
    "render_status",
    "status_json",
]


def render_check(check: MailboxCheck) -> str:
    """The steps of each server's check, the IMAP folders, and one line per server saying what failed."""
    out = [f"Mailbox {check.mailbox_id}"]
    for report in (check.imap, check.smtp):
        if report is not None:
            out += ["", *_report_lines(report)]
    out += ["", "OK: both servers work for this mailbox" if check.ok else "FAILED"]
    out += [f"  {r.summary()}" for r in (check.imap, check.smtp) if r is not None and not r.ok]
    return "\n".join(out)


def _report_lines(report: CheckReport) -> list[str]:
    who = f" as {report.username}" if report.username else ""
    lines = [f"{report.protocol.upper()} {report.host}:{report.port} (security {report.security}){who}"]
    rows = [("", "STEP", "MS", "DETAIL")]
    for step in report.steps:
        rows.append(("ok" if step.ok else "FAILED", step.name, f"{step.elapsed_ms:.0f}", step.detail))
        if step.advice:
            rows.append(("", "", "", f"what to do: {step.advice}"))
    lines += ["  " + line for line in table(rows)]
    if report.folders:
        lines.append("  Folders:")
        folder_rows = [("FOLDER", "ROLE", "READ BY MAILROOM", "LETTERS")]
        for folder in report.folders:
            read = ("yes" if folder.exists else "MISSING") if folder.configured else ""
            letters = "" if folder.messages is None else str(folder.messages)
            folder_rows.append((folder.name, folder.special_use or "", read, letters))
        lines += ["    " + line for line in table(folder_rows)]
    return lines


def check_json(check: MailboxCheck) -> str:
    return json.dumps(check.to_json(), indent=2)


@dataclass(frozen=True)
class MailboxStatus:
    """One row of `mailroom mailboxes status`: a configured mailbox and its latest health, or a mailbox
    ingest reported on that the configuration does not name (any more)."""

    mailbox_id: str
    organization: str
    state: str
    """ok, connecting, retrying, failing, stopped, or unknown (ingest has reported nothing for it)."""
    since: datetime | None
    last_letter_at: datetime | None
    folders: tuple[FolderHealth, ...]
    error: str | None
    advice: str | None
    owner: str
    configured: bool


def latest_health(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[str, MailboxHealth]:
    """The latest MailboxHealth of each key from (key, value) records in topic order; a record without a
    value (a tombstone) forgets its key. Other events, or values that do not parse, are passed over."""
    latest: dict[str, MailboxHealth] = {}
    for key, value in records:
        name = key.decode("utf-8", "replace") if key else None
        if value is None:
            if name is not None:
                latest.pop(name, None)
            continue
        if event_type_of(value) != MailboxHealth.__name__:
            continue
        try:
            health = parse_event(MailboxHealth, value)
        except EventError:
            continue
        latest[name or health.mailbox_id] = health
    return latest


def mailbox_statuses(config: MailroomConfig, latest: dict[str, MailboxHealth]) -> list[MailboxStatus]:
    """The configured mailboxes in the file's order, then those only ingest knows of, by id."""
    rows = []
    for box in config.mailboxes:
        health = latest.get(box.id)
        rows.append(
            _status(health, True)
            if health is not None
            else MailboxStatus(box.id, box.organization, "unknown", None, None, (), None, None, "", True)
        )
    configured = {box.id for box in config.mailboxes}
    rows += [_status(latest[key], False) for key in sorted(latest) if key not in configured]
    return rows


def _status(health: MailboxHealth, configured: bool) -> MailboxStatus:
    return MailboxStatus(
        health.mailbox_id,
        health.organization,
        health.state,
        health.since,
        health.last_letter_at,
        health.folders,
        health.error,
        health.advice,
        health.owner,
        configured,
    )


def render_status(statuses: list[MailboxStatus]) -> str:
    """A grid, one mailbox a row; a mailbox's error and advice follow on lines of their own."""
    if not statuses:
        return "no mailboxes configured, and ingest has reported none"
    head = ("MAILBOX", "ORGANIZATION", "STATE", "SINCE (UTC)", "LAST LETTER (UTC)", "FOLDERS", "OWNER")
    rows: list[tuple[str, ...]] = [head]
    notes: dict[int, list[str]] = {}
    for s in statuses:
        folders = ", ".join(f"{f.folder} {f.waiting if f.state == 'ok' else f.state}" for f in s.folders)
        when, last = utc_text(s.since), utc_text(s.last_letter_at)
        rows.append((s.mailbox_id, s.organization, s.state, when, last, folders or "-", s.owner or "-"))
        lines = [] if s.configured else ["not in this configuration file"]
        lines += [f"error: {s.error}"] if s.error else []
        lines += [f"{f.folder}: {f.error}" for f in s.folders if f.error and f.error != s.error]
        lines += [f"what to do: {s.advice}"] if s.advice else []
        notes[len(rows) - 1] = lines
    out = []
    for index, line in enumerate(table(rows)):
        out.append(line)
        out += [f"    {note}" for note in notes.get(index, [])]
    return "\n".join(out)


def status_json(statuses: list[MailboxStatus]) -> str:
    return json.dumps([_status_dict(s) for s in statuses], indent=2)


def _status_dict(s: MailboxStatus) -> dict[str, Any]:
    return {
        "mailbox_id": s.mailbox_id,
        "organization": s.organization,
        "state": s.state,
        "since": s.since.isoformat() if s.since else None,
        "last_letter_at": s.last_letter_at.isoformat() if s.last_letter_at else None,
        "folders": [f.model_dump(mode="json") for f in s.folders],
        "error": s.error,
        "advice": s.advice,
        "owner": s.owner,
        "configured": s.configured,
    }
