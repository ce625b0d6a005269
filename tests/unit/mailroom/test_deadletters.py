"""Where a dead letter goes back to, and how the list reads."""

from __future__ import annotations

from mailroom.deadletters import Target, render_list, rows, target_of
from schemas.events import DeadLetter


def _dead(topic: str, **changes: object) -> DeadLetter:
    made = DeadLetter.of(
        "matcher",
        ValueError("boom"),
        topic,
        b"original",
        "letter",
        partition=2,
        offset=41,
        key=b"support",
        mailbox_id="support",
    )
    return made.model_copy(update=changes)


def test_a_stream_workers_dead_letter_goes_back_to_its_message() -> None:
    assert target_of(_dead("ns.mailroom.letters.received.v1")) == Target(
        "ns.mailroom.letters.received.v1", 2, 41, "support"
    )


def test_an_ingest_dead_letter_becomes_its_letter_again_unless_only_its_head_was_kept() -> None:
    dead = _dead("imap:support/Orders", stage="ingest")
    assert target_of(dead) == Target("imap", 2, None, "support", "support", "Orders")
    assert (
        target_of(dead.model_copy(update={"original_truncated": True}))
        == "only the head of the letter was kept"
    )
    assert "over the size limit" in str(target_of(dead.model_copy(update={"error_type": "LetterTooLarge"})))
    assert "does not say where" in str(target_of(dead.model_copy(update={"source_offset": None})))


def test_the_list_filters_by_mailbox_and_stage_and_says_what_can_be_reprocessed() -> None:
    found = [
        _dead("t.mailroom.letters.received.v1"),
        _dead(
            "imap:sales/INBOX", stage="ingest", mailbox_id="sales", error_type="LetterTooLarge", event_id="x"
        ),
    ]
    assert [r["mailbox"] for r in rows(found, mailbox="sales")] == ["sales"]
    assert [r["stage"] for r in rows(found, stage="matcher")] == ["matcher"]
    lines = render_list(rows(found)).splitlines()
    assert lines[0].split() == ["ID", "WHEN", "(UTC)", "STAGE", "MAILBOX", "ERROR", "REPROCESS", "REASON"]
    assert " yes " in lines[1] and " no " in lines[2]
    assert render_list([]) == "no dead letters"
