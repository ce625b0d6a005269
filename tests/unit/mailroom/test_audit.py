"""`mailroom audit`: letters joined with their thread, record, decision, replies and delivery, and what the
configuration in force would decide now, over events built in memory as the workers make them."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from converter.mapping import link_for, record_for
from ingest.parse import letter_event
from mailroom.audit import Events, as_csv, as_json, audit, decide_now, moment, render_table, summary, verdict
from matcher.decision import decide
from matcher.limits import ReplyHistory
from matcher.rules import compile_rules
from matcher.threads import ThreadIndex
from schemas.config import CaseProcessing, MailroomConfig
from schemas.events import (
    DeadLetter,
    LetterDecided,
    LetterReceived,
    MailboxVersion,
    ReplyFailed,
    ReplyFiled,
    ReplySent,
)
from schemas.ids import case_id
from tests.unit.builders import NOW, condition, config, letter_bytes, mailbox, rule

URGENT = rule("urgent", condition("subject", "contains", "urgent"))
CUSTOMERS = ("ann@customer.example", "bob@customer.example", "cid@customer.example")


def _config(*rules: object, **fields: object) -> MailroomConfig:
    return config(mailbox(*rules, processing=CaseProcessing(type="case"), **fields))  # type: ignore[arg-type]


def _letter(uid: int, subject: str, sender: str = CUSTOMERS[0], **headers: str) -> LetterReceived:
    raw = letter_bytes(
        sender=sender, subject=subject, message_id=f"m{uid}@customer.example", headers=headers or None
    )
    return letter_event("support", "acme", "INBOX", 7, uid, NOW + timedelta(minutes=uid), raw)


def _run(letters: list[LetterReceived], cfg: MailroomConfig, version: int = 1) -> Events:
    """The topics after the workers took `letters` with `cfg`: the matcher's events, the converter's
    records and links, the responder's outcomes (every reply sent and filed), the configuration history."""
    box = cfg.mailboxes[0]
    events = Events(letters=list(letters))
    events.versions.append(
        MailboxVersion(
            event_id="v", occurred_at=NOW, mailbox=box, version=version, changed_by="ops", created_at=NOW
        )
    )
    threads, history, rules = ThreadIndex(), ReplyHistory(), compile_rules(box)
    for letter in letters:
        outcome = decide(letter, box, cfg, rules, threads, history, NOW)
        threads.remember_letter(outcome.threaded)
        for reply in outcome.replies:
            threads.remember_reply(reply)
            history.remember(reply)
            events.requests.append(reply)
            for made in (ReplySent, ReplyFiled):
                common = {"event_id": f"{made.__name__}-{reply.reply_id}", "occurred_at": NOW}
                extra = {"to": ("x",)} if made is ReplySent else {"folder": "Sent"}
                mid = {"message_id": f"reply-{reply.reply_id}@acme.example"}
                events.outcomes.append(
                    made(reply_id=reply.reply_id, mailbox_id=box.id, **common, **mid, **extra)  # type: ignore[arg-type]
                )
        events.threaded.append(outcome.threaded)
        events.decided.append(outcome.decided.model_copy(update={"config_version": version}))
        record = record_for(outcome.threaded, box, NOW)
        if record is not None:
            events.records.append(record)
        elif not outcome.threaded.starts_thread:
            events.links.append(
                link_for(outcome.threaded, "case", case_id(box.id, outcome.threaded.thread_id), NOW)
            )
    return events


def _by_subject(entries: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(e["subject"]): e for e in entries}


def _mixed() -> list[LetterReceived]:
    return [
        _letter(1, "urgent: printer on fire"),
        _letter(2, "Question about invoice 17", CUSTOMERS[1]),
        _letter(3, "Re: urgent: printer on fire", **{"In-Reply-To": "<m1@customer.example>"}),
        _letter(4, "urgent: out of office", CUSTOMERS[2], **{"Auto-Submitted": "auto-replied"}),
        _letter(5, "Another question", CUSTOMERS[2]),
    ]


def test_each_letter_shows_its_thread_record_rules_reply_and_delivery_and_now_is_the_same() -> None:
    cfg = _config(URGENT, rule("late", position=5, active=False))
    entries = audit(_run(_mixed(), cfg), cfg, NOW)
    got = _by_subject(entries)
    assert [e["uid"] for e in entries] == [1, 2, 3, 4, 5]

    first = got["urgent: printer on fire"]
    assert first["thread"] == {
        "id": "m1@customer.example",
        "new": True,
        "direction": "incoming",
        "automated": None,
    }
    assert first["record"] == {
        "type": "case",
        "id": case_id("support", "m1@customer.example"),
        "made": "created",
    }
    decision = first["decision"]
    assert isinstance(decision, dict)
    assert decision["replied_with"] == ["urgent"] and decision["no_reply"] is None
    assert decision["config_version"] == 1
    assert [(r["rule_id"], r["outcome"]) for r in decision["rules"]] == [
        ("urgent", "matched"),
        ("late", "inactive"),
    ]
    [reply] = first["replies"]  # type: ignore[misc]
    assert reply["rule_id"] == "urgent" and reply["to"] == [CUSTOMERS[0]]
    assert reply["delivery"]["state"] == "sent" and reply["filing"]["folder"] == "Sent"

    question = got["Question about invoice 17"]["decision"]
    assert isinstance(question, dict)
    assert question["no_reply"] == "no rule matched"
    assert question["rules"][0]["detail"] == 'condition 1 of 1 failed: subject contains "urgent"'

    follow_up = got["Re: urgent: printer on fire"]
    assert follow_up["thread"]["new"] is False  # type: ignore[index]
    assert follow_up["record"]["made"] == "linked"  # type: ignore[index]
    assert follow_up["replies"] == []
    assert (
        "held back by a limit: 1 letter(s) of this thread already answered"
        in follow_up["decision"]["no_reply"]
    )  # type: ignore[index]

    machine = got["urgent: out of office"]
    assert machine["record"] is None
    assert machine["decision"]["no_reply"].startswith("loop guard: ")  # type: ignore[index]
    assert machine["decision"]["rules"][0]["outcome"] == "not evaluated"  # type: ignore[index]

    assert {e["now"]["status"] for e in entries} == {"same"}  # type: ignore[index]
    assert summary(entries) == {"letters": 5, "replied": 1, "records": 3, "differ_now": 0}


def test_a_changed_rule_marks_the_letters_it_would_decide_differently() -> None:
    before = _config(URGENT)
    events = _run(_mixed(), before)
    # Same rule, same created_at, a condition that now matches the questions instead.
    changed = rule("urgent", condition("subject", "contains", "question"))
    after = _config(changed)
    got = _by_subject(audit(events, after, NOW))

    now = {subject: entry["now"] for subject, entry in got.items()}
    assert now["urgent: printer on fire"]["status"] == "differs"  # type: ignore[index]
    assert now["urgent: printer on fire"]["text"] == (  # type: ignore[index]
        "differs: would not reply: no rule matched (was: reply with rule urgent)"
    )
    assert now["Question about invoice 17"]["text"] == (  # type: ignore[index]
        "differs: would reply with rule urgent (was: no reply: no rule matched)"
    )
    # The follow-up's thread is no longer answered: no limit holds it back, no rule matches it.
    assert now["Re: urgent: printer on fire"]["status"] == "differs"  # type: ignore[index]
    assert now["urgent: out of office"]["text"] == "same"  # type: ignore[index]
    assert now["Another question"]["replied_with"] == ["urgent"]  # type: ignore[index]
    # The recorded outcome is described with the rule as it was (the history), "now" with the rule as it is.
    question = got["Question about invoice 17"]
    assert '"urgent"' in question["decision"]["rules"][0]["detail"]  # type: ignore[index]
    assert question["now"]["rules"][0]["outcome"] == "matched"  # type: ignore[index]
    assert summary(list(got.values()))["differ_now"] == 4


def test_now_replays_the_letters_in_order_so_thread_limits_hold_as_they_would() -> None:
    cfg = _config(URGENT)
    letters = _mixed()
    decided = decide_now(letters, cfg, NOW)
    assert [verdict(d).replied_with for d in decided.values() if isinstance(d, LetterDecided)] == [
        ("urgent",),
        (),
        (),
        (),
        (),
    ]
    # Alone, the follow-up would be answered: only its thread's history holds it back.
    alone = decide_now(letters[2:3], cfg, NOW)[letters[2].event_id]
    assert isinstance(alone, LetterDecided) and verdict(alone).replied_with == ("urgent",)


def test_a_new_rule_does_not_answer_letters_received_before_it_was_created() -> None:
    cfg = _config(URGENT)
    events = _run(_mixed()[:1], cfg)
    late = rule("urgent", condition("subject", "contains", "urgent")).model_copy(
        update={"created_at": NOW + timedelta(days=1)}
    )
    [entry] = audit(events, _config(late), NOW)
    assert entry["now"]["text"].startswith("differs: would not reply: no rule matched")
    assert entry["now"]["rules"][0]["outcome"] == "not yet created"


def test_filters_by_mailbox_time_and_letter() -> None:
    cfg = _config(URGENT)
    events = _run(_mixed(), cfg)
    assert audit(events, cfg, NOW, mailbox="sales") == []
    window = audit(events, cfg, NOW, since=NOW + timedelta(minutes=2), until=NOW + timedelta(minutes=4))
    assert [e["uid"] for e in window] == [2, 3]
    by_message_id = audit(events, cfg, NOW, letters=["<m3@customer.example>"])
    assert [e["uid"] for e in by_message_id] == [3]
    # Filtered out letters still count for now: the follow-up is held back by its thread's first reply.
    assert by_message_id[0]["now"]["status"] == "same"
    assert [e["uid"] for e in audit(events, cfg, NOW, letters=[events.letters[4].event_id])] == [5]


def test_a_replay_repeats_events_and_the_first_decision_stays_what_happened() -> None:
    cfg = _config(URGENT)
    events = _run(_mixed()[:1], cfg)
    first = events.decided[0]
    events.letters.append(events.letters[0])
    events.decided.append(first.model_copy(update={"kept_from": 1, "config_version": None}))
    events.outcomes.append(
        ReplyFailed(
            event_id="again", occurred_at=NOW, reply_id=first.reply_ids[0], mailbox_id="support", reason="x"
        )
    )
    [entry] = audit(events, cfg, NOW)
    assert entry["decision"]["kept_from"] is None and entry["decision"]["config_version"] == 1
    # The latest sending outcome is the reply's delivery.
    assert entry["replies"][0]["delivery"]["state"] == "failed"


def test_a_dead_lettered_letter_has_no_decision_and_a_removed_mailbox_decides_nothing_now() -> None:
    cfg = _config(URGENT)
    events = _run(_mixed()[:1], cfg)
    junk = letter_event("support", "acme", "INBOX", 7, 9, NOW, b"Subject: no sender\r\n\r\nbody")
    events.letters.append(junk)
    events.dead.append(
        DeadLetter.of(
            "matcher", ValueError("no sender address"), "t", junk.raw, "letter", mailbox_id="support"
        )
    )
    entries = audit(events, cfg, NOW)
    assert entries[1]["decision"] is None and entries[1]["dead_letter"] == "no sender address"
    assert entries[1]["now"]["status"] == "undecided"
    assert "dead-letter topic" in entries[1]["now"]["text"]

    gone = audit(events, config(mailbox(mailbox_id="other")), NOW)
    assert gone[0]["now"]["text"] == "differs: the mailbox is not in the configuration now"


def test_table_json_and_csv_show_every_letter_and_the_summary() -> None:
    events = _run(_mixed(), _config(URGENT))
    entries = audit(events, _config(rule("urgent", condition("subject", "contains", "question"))), NOW)

    lines = render_table(entries).splitlines()
    assert lines[0].split()[:3] == ["RECEIVED", "(UTC)", "MAILBOX"] and lines[0].rstrip().endswith("NOW")
    assert len(lines) == 1 + 5 + 1
    assert "follow-up m1@customer.example" in lines[3] and "case " in lines[1]
    assert "sent " in lines[1] and "filed in Sent" in lines[1]
    assert lines[-1] == "5 letters, 1 replied, 3 records made, 4 decided differently now"

    shown = json.loads(as_json(entries))
    assert shown["summary"]["differ_now"] == 4 and len(shown["letters"]) == 5

    rows = list(csv.DictReader(io.StringIO(as_csv(entries))))
    assert [r["now_status"] for r in rows] == ["differs", "differs", "differs", "same", "differs"]
    assert rows[0]["reply"].startswith(f"urgent -> {CUSTOMERS[0]}: ")
    assert render_table([]) == "no letters\n0 letters, 0 replied, 0 records made, 0 decided differently now"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-02", datetime(2026, 12, 2, tzinfo=UTC)),
        ("2026-12-02T03:04:05Z", datetime(2026, 12, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-12-02T04:04:05+01:00", datetime(2026, 12, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_times_are_iso_and_utc_unless_they_say_otherwise(text: str, expected: datetime) -> None:
    assert moment(text) == expected


def test_a_bad_time_is_refused() -> None:
    with pytest.raises(ValueError):
        moment("yesterday")
