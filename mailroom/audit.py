"""`mailroom audit`: per letter, what mailroom did with it (thread, record, each rule's outcome, the replies
and their delivery) and what the configuration in force would decide now, differences marked.

The topics are read to their end outside any consumer group: nothing is sent, written or committed.
"Now" decides every letter of a mailbox again, in the order the matcher took them, with the matcher's own
pure functions and a fresh thread index and reply history, so threads and reply limits are what they would
be; it is compared with the recorded decision by the replies asked for and, without one, the reason.

Pure: `Events`, `verdict`, `decide_now`, `audit`, `summary`, `render_table`, `as_json`, `as_csv`.
I/O: `read_events`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any

from mailroom.grids import condition_text
from mailroom.tables import table, utc_text
from matcher.decision import decide
from matcher.errors import UnprocessableLetterError
from matcher.limits import ReplyHistory
from matcher.rules import CompiledRules, compile_rules
from matcher.threads import ThreadIndex
from runtime.settings import KafkaSettings
from runtime.snapshot import read_topics
from schemas import topics
from schemas.config import Mailbox, MailroomConfig
from schemas.errors import EventError
from schemas.events import (
    Address,
    CaseCreated,
    DeadLetter,
    Event,
    LeadCreated,
    LetterDecided,
    LetterLinked,
    LetterReceived,
    LetterThreaded,
    MailboxVersion,
    ReplyDeferred,
    ReplyFailed,
    ReplyFiled,
    ReplyFilingFailed,
    ReplyRequested,
    ReplySent,
    RuleOutcome,
    event_type_of,
    parse_event,
)
from schemas.ids import reply_id

__all__ = [
    "Events",
    "Verdict",
    "as_csv",
    "as_json",
    "audit",
    "decide_now",
    "moment",
    "read_events",
    "render_table",
    "summary",
    "summary_line",
    "verdict",
]

_MODELS: dict[str, type[Event]] = {
    m.__name__: m
    for m in (
        LetterReceived,
        LetterThreaded,
        LetterDecided,
        ReplyRequested,
        ReplySent,
        ReplyFailed,
        ReplyDeferred,
        ReplyFiled,
        ReplyFilingFailed,
        LeadCreated,
        CaseCreated,
        LetterLinked,
        MailboxVersion,
        DeadLetter,
    )
}
_TOPICS = (
    topics.LETTERS_RECEIVED,
    topics.LETTERS_THREADED,
    topics.LETTERS_DECIDED,
    topics.REPLIES_REQUESTED,
    topics.REPLY_OUTCOMES,
    topics.LEADS,
    topics.CASES,
    topics.LETTER_LINKS,
    topics.CONFIG_HISTORY,
    topics.DEAD_LETTERS,
)
_KEYED_BY_MAILBOX = {
    topics.LETTERS_RECEIVED.name,
    topics.LETTERS_THREADED.name,
    topics.LETTERS_DECIDED.name,
    topics.REPLIES_REQUESTED.name,
    topics.CONFIG_HISTORY.name,
}


@dataclass
class Events:
    """What the topics hold, each kind in the order read (a mailbox's letters in the matcher's order)."""

    letters: list[LetterReceived] = field(default_factory=list)
    threaded: list[LetterThreaded] = field(default_factory=list)
    decided: list[LetterDecided] = field(default_factory=list)
    requests: list[ReplyRequested] = field(default_factory=list)
    outcomes: list[Event] = field(default_factory=list)
    """ReplySent, ReplyFailed, ReplyDeferred, ReplyFiled, ReplyFilingFailed in the order written."""
    records: list[LeadCreated | CaseCreated] = field(default_factory=list)
    links: list[LetterLinked] = field(default_factory=list)
    versions: list[MailboxVersion] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)

    def add(self, event: Event) -> None:
        if isinstance(event, LetterReceived):
            self.letters.append(event)
        elif isinstance(event, LetterThreaded):
            self.threaded.append(event)
        elif isinstance(event, LetterDecided):
            self.decided.append(event)
        elif isinstance(event, ReplyRequested):
            self.requests.append(event)
        elif isinstance(event, LeadCreated | CaseCreated):
            self.records.append(event)
        elif isinstance(event, LetterLinked):
            self.links.append(event)
        elif isinstance(event, MailboxVersion):
            self.versions.append(event)
        elif isinstance(event, DeadLetter):
            self.dead.append(event)
        else:
            self.outcomes.append(event)

    def knows(self, mailbox_id: str) -> bool:
        """Whether any letter or configuration version of the mailbox is on the topics."""
        return any(v.mailbox.id == mailbox_id for v in self.versions) or any(
            letter.mailbox_id == mailbox_id for letter in self.letters
        )


@dataclass(frozen=True)
class Verdict:
    """A decision in short: the rules whose reply was asked for, or why none was."""

    replied_with: tuple[str, ...]
    no_reply: str | None

    def text(self) -> str:
        if self.replied_with:
            many = "s" if len(self.replied_with) > 1 else ""
            return f"reply with rule{many} {', '.join(self.replied_with)}"
        return f"no reply: {self.no_reply}"


def verdict(decided: LetterDecided) -> Verdict:
    """The verdict a decision records (reply ids are derived from the letter's key and the rule)."""
    key = decided.handled_as or decided.message_id
    asked = set(decided.reply_ids)
    matched = [o.rule_id for o in decided.rules if o.matched]
    replied = tuple(r for r in matched if reply_id(decided.mailbox_id, key, r) in asked)
    if replied:
        return Verdict(replied, None)
    if decided.skipped_because:
        return Verdict((), f"loop guard: {decided.skipped_because}")
    if decided.limited:
        return Verdict((), f"held back by a limit: {decided.limited[0].partition(': ')[2]}")
    if matched:
        return Verdict((), "decided before, when no reply was asked for")
    return Verdict((), "no rule matched" if decided.rules else "no active rule")


def decide_now(
    letters: Sequence[LetterReceived],
    config: MailroomConfig,
    now: datetime,
    employee_replies: Iterable[ReplyRequested] = (),
) -> dict[str, LetterDecided | str]:
    """Letter id -> the decision `config` makes now, deciding `letters` in order as the matcher would from
    an empty memory; or why it makes none (the mailbox is gone, the letter cannot be processed)."""
    threads, history = ThreadIndex(), ReplyHistory()
    for reply in employee_replies:  # they join their threads: an answer to one names its Message-ID
        threads.remember_reply(reply)
    compiled: dict[str, CompiledRules] = {}
    decided: dict[str, LetterDecided | str] = {}
    for letter in letters:
        box = config.mailbox(letter.mailbox_id)
        if box is None:
            decided[letter.event_id] = "the mailbox is not in the configuration now"
            continue
        if box.id not in compiled:
            compiled[box.id] = compile_rules(box)
        try:
            outcome = decide(letter, box, config, compiled[box.id], threads, history, now)
        except UnprocessableLetterError as exc:
            decided[letter.event_id] = f"it would go to the dead-letter topic: {exc}"
            continue
        threads.remember_letter(outcome.threaded)
        for reply in outcome.replies:
            threads.remember_reply(reply)
            history.remember(reply)
        decided[letter.event_id] = outcome.decided
    return decided


def _rules(decided: LetterDecided, box: Mailbox | None) -> list[dict[str, Any]]:
    """Each rule's outcome, the rules of `box` (the version the decision was made with) in order."""
    outcomes = {o.rule_id: o for o in decided.rules}
    rows: list[dict[str, Any]] = []
    for rule in box.active_rules() if box else ():
        got = outcomes.pop(rule.id, None)
        if got is not None:
            rows.append(_rule_row(got, rule.conditions))
            continue
        why = "the loop guard stopped the letter" if decided.skipped_because else "an earlier rule matched"
        rows.append(_row(rule.id, rule.name, "not evaluated", why))
    rows.extend(_rule_row(o, ()) for o in outcomes.values())
    rows.extend(_row(r.id, r.name, "inactive", "") for r in (box.rules if box else ()) if not r.active)
    return rows


def _rule_row(outcome: RuleOutcome, conditions: Sequence[Any]) -> dict[str, Any]:
    if outcome.matched:
        return _row(outcome.rule_id, outcome.rule_name, "matched", "")
    index = outcome.failed_condition
    if index is None:
        state = (
            "not yet created" if "before the rule was created" in (outcome.reason or "") else "not matched"
        )
        return _row(outcome.rule_id, outcome.rule_name, state, outcome.reason or "")
    what = f": {condition_text(conditions[index])}" if index < len(conditions) else ""
    detail = f"condition {index + 1}{f' of {len(conditions)}' if conditions else ''} failed{what}"
    return _row(outcome.rule_id, outcome.rule_name, "not matched", detail)


def _row(rule_id: str, name: str, outcome: str, detail: str) -> dict[str, Any]:
    return {"rule_id": rule_id, "rule_name": name, "outcome": outcome, "detail": detail}


def _delivery(outcomes: Sequence[Event]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What became of one reply: its latest sending outcome, and its filing in the Sent folder."""
    sent: dict[str, Any] = {"state": "requested", "at": None}
    filed: dict[str, Any] | None = None
    for event in outcomes:
        at = event.occurred_at.isoformat()
        if isinstance(event, ReplySent):
            sent = {"state": "sent", "at": at, "smtp_code": event.smtp_code, "attempts": event.attempts}
            sent["subject"] = _subject_of(event.message)
        elif isinstance(event, ReplyFailed):
            sent = {"state": "failed", "at": at, "reason": event.reason, "smtp_code": event.smtp_code}
        elif isinstance(event, ReplyDeferred):
            sent = {"state": "deferred", "at": at, "reason": event.reason}
            sent["retry_at"] = event.retry_at.isoformat()
        elif isinstance(event, ReplyFiled):
            filed = {"state": "filed", "at": at, "folder": event.folder}
        elif isinstance(event, ReplyFilingFailed):
            filed = {"state": "filing failed", "at": at, "reason": event.reason}
    return sent, filed


def _subject_of(message: bytes) -> str | None:
    if not message:
        return None
    subject = BytesHeaderParser(policy=default_policy).parsebytes(message).get("subject")
    return None if subject is None else str(subject)


def _first(events: Iterable[Any], key: Callable[[Any], str]) -> dict[str, Any]:
    """The first event for each key: a replay writes the same facts again, the first is what happened."""
    found: dict[str, Any] = {}
    for event in events:
        found.setdefault(key(event), event)
    return found


class _Joined:
    """The events joined by letter id and reply id."""

    def __init__(self, events: Events, config: MailroomConfig) -> None:
        self.config = config
        self.received: list[LetterReceived] = list(_first(events.letters, lambda e: e.event_id).values())
        self.threaded = _first(events.threaded, lambda e: e.letter_id)
        self.decided = _first(events.decided, lambda e: e.letter_id)
        self.requests = _first((r for r in events.requests if r.kind == "auto"), lambda r: r.reply_id)
        self.created = _first(events.records, lambda r: r.letter_id)
        self.linked = _first(events.links, lambda r: r.letter_id)
        self.versions = {(v.mailbox.id, v.version): v.mailbox for v in events.versions}
        self.dead = {
            (d.mailbox_id, d.original_sha256): d.reason
            for d in events.dead
            if d.stage == "matcher" and d.original_kind == "letter"
        }
        self.outcomes: dict[str, list[Event]] = {}
        for event in events.outcomes:
            self.outcomes.setdefault(str(getattr(event, "reply_id", "")), []).append(event)

    def thread(self, letter: LetterReceived) -> dict[str, Any] | None:
        threaded: LetterThreaded | None = self.threaded.get(letter.event_id)
        if threaded is None:
            return None
        return {
            "id": threaded.thread_id,
            "new": threaded.starts_thread,
            "direction": threaded.direction,
            "automated": threaded.automated_because,
        }

    def record(self, letter: LetterReceived) -> dict[str, Any] | None:
        made = self.created.get(letter.event_id)
        if isinstance(made, LeadCreated):
            return {"type": "lead", "id": made.lead_id, "made": "created"}
        if isinstance(made, CaseCreated):
            return {"type": "case", "id": made.case_id, "made": "created"}
        link: LetterLinked | None = self.linked.get(letter.event_id)
        return {"type": link.record_type, "id": link.record_id, "made": "linked"} if link else None

    def decision(self, recorded: LetterDecided, was: Verdict) -> dict[str, Any]:
        version = recorded.kept_from or recorded.config_version or 0
        # The rules as they were when the decision was made (the history), else as they are now.
        box = self.versions.get((recorded.mailbox_id, version)) or self.config.mailbox(recorded.mailbox_id)
        return {
            "config_version": recorded.config_version,
            "kept_from": recorded.kept_from,
            "handled_as": recorded.handled_as,
            "rules": _rules(recorded, box),
            "replied_with": list(was.replied_with),
            "no_reply": was.no_reply,
            "held_back": list(recorded.limited),
        }

    def reply(self, rid: str) -> dict[str, Any]:
        request: ReplyRequested | None = self.requests.get(rid)
        delivery, filing = _delivery(self.outcomes.get(rid, []))
        template = request.template if request else None
        return {
            "reply_id": rid,
            "rule_id": request.rule_id if request else None,
            "to": [a.address for a in request.to] if request else [],
            "template_subject": template.subject if template else None,
            "delivery": delivery,
            "filing": filing,
        }


def audit(
    events: Events,
    config: MailroomConfig,
    now: datetime,
    *,
    mailbox: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    letters: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One entry per letter received (in the mailbox, at or after `since` and before `until`, with one of
    the event ids or Message-IDs `letters`), oldest first within a mailbox."""
    joined = _Joined(events, config)
    wanted = {w.strip().strip("<>") for w in letters}
    chosen = [
        letter
        for letter in joined.received
        if (mailbox is None or letter.mailbox_id == mailbox)
        and (since is None or letter.occurred_at >= since)
        and (until is None or letter.occurred_at < until)
        and (not wanted or letter.event_id in wanted or letter.headers.message_id in wanted)
    ]
    boxes = {letter.mailbox_id for letter in chosen}
    employees = [r for r in events.requests if r.kind == "employee" and r.mailbox_id in boxes]
    today = decide_now([x for x in joined.received if x.mailbox_id in boxes], config, now, employees)
    entries = []
    for letter in chosen:
        head = letter.headers
        sender = head.from_ or (head.reply_to[0] if head.reply_to else None)
        recorded: LetterDecided | None = joined.decided.get(letter.event_id)
        was = verdict(recorded) if recorded else None
        entries.append(
            {
                "letter_id": letter.event_id,
                "received_at": letter.occurred_at.isoformat(),
                "mailbox": letter.mailbox_id,
                "folder": letter.folder,
                "uid": letter.uid,
                "from": f"{sender.name} <{sender.address}>" if sender and sender.name else _address(sender),
                "subject": head.subject,
                "message_id": head.message_id,
                "thread": joined.thread(letter),
                "record": joined.record(letter),
                "decision": joined.decision(recorded, was) if recorded and was else None,
                "dead_letter": joined.dead.get((letter.mailbox_id, hashlib.sha256(letter.raw).hexdigest())),
                "replies": [joined.reply(rid) for rid in recorded.reply_ids] if recorded else [],
                "now": _now(was, today.get(letter.event_id), config.mailbox(letter.mailbox_id)),
            }
        )
    return entries


def _address(sender: Address | None) -> str:
    return sender.address if sender else ""


def _now(was: Verdict | None, now: LetterDecided | str | None, box: Mailbox | None) -> dict[str, Any]:
    """What the configuration in force decides, and whether that differs from what was decided."""
    if not isinstance(now, LetterDecided):
        why = now or "not decided"
        return {"status": "differs" if was else "undecided", "text": f"differs: {why}" if was else why}
    got = verdict(now)
    shown: dict[str, Any] = {
        "replied_with": list(got.replied_with),
        "no_reply": got.no_reply,
        "rules": _rules(now, box),
    }
    if was is None:
        return {"status": "undecided", "text": f"no decision recorded; now: {got.text()}", **shown}
    if got == was:
        return {"status": "same", "text": "same", **shown}
    text = f"would {got.text()}" if got.replied_with else f"would not reply: {got.no_reply}"
    return {"status": "differs", "text": f"differs: {text} (was: {was.text()})", **shown}


def summary(entries: Sequence[dict[str, Any]]) -> dict[str, int]:
    return {
        "letters": len(entries),
        "replied": sum(1 for e in entries if e["replies"]),
        "records": sum(1 for e in entries if e["record"] and e["record"]["made"] == "created"),
        "differ_now": sum(1 for e in entries if e["now"]["status"] == "differs"),
    }


def summary_line(entries: Sequence[dict[str, Any]]) -> str:
    counts = summary(entries)
    return (
        f"{counts['letters']} letters, {counts['replied']} replied, {counts['records']} records made, "
        f"{counts['differ_now']} decided differently now"
    )


def as_json(entries: Sequence[dict[str, Any]]) -> str:
    return json.dumps({"summary": summary(entries), "letters": list(entries)}, indent=2, ensure_ascii=False)


def _cells(entry: dict[str, Any]) -> dict[str, str]:
    """An entry's columns as text, shared by the table and the CSV."""
    thread, record, decision = entry["thread"], entry["record"], entry["decision"]
    if decision is None:
        rules = decision_text = "-"
        if entry["dead_letter"]:
            decision_text = f"dead letter: {entry['dead_letter']}"
    else:
        rules = "; ".join(
            f"{r['rule_id']} {r['outcome']}" + (f" ({r['detail']})" if r["detail"] else "")
            for r in decision["rules"]
        )
        decision_text = Verdict(tuple(decision["replied_with"]), decision["no_reply"]).text()
    replies = "; ".join(
        f"{r['rule_id']} -> {', '.join(r['to'])}: {r['delivery'].get('subject') or r['template_subject']}"
        for r in entry["replies"]
    )
    return {
        "received": utc_text(datetime.fromisoformat(entry["received_at"])),
        "mailbox": entry["mailbox"],
        "from": entry["from"],
        "subject": entry["subject"],
        "message_id": entry["message_id"],
        "thread": f"{'new' if thread['new'] else 'follow-up'} {thread['id']}" if thread else "-",
        "record": f"{record['type']} {record['id']} ({record['made']})" if record else "none",
        "rules": rules or "no active rule",
        "decision": decision_text,
        "reply": replies or "-",
        "delivery": "; ".join(_delivery_text(r) for r in entry["replies"]) or "-",
        "now": entry["now"]["text"],
    }


def _delivery_text(reply: dict[str, Any]) -> str:
    sent, filed = reply["delivery"], reply["filing"]
    at = utc_text(datetime.fromisoformat(sent["at"])) if sent["at"] else ""
    words = {
        "sent": f"sent {at}",
        "failed": f"failed {at}: {sent.get('reason')}",
        "deferred": f"deferred, tried again {sent.get('retry_at')}",
    }
    text = words.get(sent["state"], str(sent["state"]))
    if filed:
        text += f", filed in {filed['folder']}" if filed["state"] == "filed" else ", not filed"
    return text


_HEADS = {
    "received": "RECEIVED (UTC)",
    "mailbox": "MAILBOX",
    "from": "FROM",
    "subject": "SUBJECT",
    "message_id": "MESSAGE-ID",
    "thread": "THREAD",
    "record": "RECORD",
    "rules": "RULES",
    "decision": "DECISION",
    "reply": "REPLY",
    "delivery": "DELIVERY",
    "now": "NOW",
}


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def render_table(entries: Sequence[dict[str, Any]]) -> str:
    """One line per letter; long cells are cut (the JSON and CSV have them whole)."""
    if not entries:
        return "no letters\n" + summary_line(entries)
    rows = [tuple(_HEADS.values())]
    for entry in entries:
        cells = _cells(entry)
        rows.append(tuple(_short(cells[k], 200 if k in ("now", "rules") else 60) for k in _HEADS))
    return "\n".join([*table(rows), summary_line(entries)])


def as_csv(entries: Sequence[dict[str, Any]]) -> str:
    """One row per letter, the letter's id first; every cell whole."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["letter_id", *_HEADS, "now_status"])
    for entry in entries:
        cells = _cells(entry)
        writer.writerow([entry["letter_id"], *(cells[k] for k in _HEADS), entry["now"]["status"]])
    return out.getvalue()


def moment(text: str) -> datetime:
    """An ISO date (midnight UTC) or date-time (UTC unless it has an offset); ValueError otherwise."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# I/O


def read_events(
    kafka: KafkaSettings,
    mailbox: str | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
) -> Events:
    """The topics an audit needs, read to the end they have now with one consumer outside any consumer
    group (nothing committed); with `mailbox`, that mailbox's events only. `progress(done, total)`."""
    events = Events()
    names = {kafka.topic(spec): spec.name for spec in _TOPICS}
    done = ahead = 0

    def told(count: int) -> None:
        nonlocal ahead
        ahead = count

    for record in read_topics(kafka, _TOPICS, timeout, tombstones=True, total=told):
        done += 1
        if progress is not None and (done % 500 == 0 or done == ahead):
            progress(done, ahead)
        if record.value is None:
            continue
        keyed = names[record.topic] in _KEYED_BY_MAILBOX
        if mailbox is not None and keyed and (record.key or b"").decode("utf-8", "replace") != mailbox:
            continue
        model = _MODELS.get(event_type_of(record.value) or "")
        if model is None:
            continue
        try:
            event = parse_event(model, record.value)
        except EventError:
            continue  # not ours to judge here: the worker reading it dead-letters it
        if mailbox is None or getattr(event, "mailbox_id", None) in (mailbox, None) or keyed:
            events.add(event)
    return events
