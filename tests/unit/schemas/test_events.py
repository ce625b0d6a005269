"""Events: bytes on a topic round-trip; bad bytes are an EventError that says what is wrong."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas.errors import EventError
from schemas.events import (
    Address,
    CaseCreated,
    DeadLetter,
    Event,
    IngestCheckpoint,
    LetterDecided,
    LetterHeaders,
    LetterReceived,
    ReplyFailed,
    ReplySent,
    RuleOutcome,
    event_type_of,
    parse_event,
)

AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
RAW = b"From: a@x.example\r\nSubject: caf\xc3\xa9 \xff\r\n\r\n\x00\x80 binary"


def _received() -> LetterReceived:
    return LetterReceived(
        event_id="e1",
        occurred_at=AT,
        produced_at=AT,
        mailbox_id="support",
        organization="acme",
        folder="INBOX",
        uidvalidity=7,
        uid=42,
        size=len(RAW),
        headers=LetterHeaders(
            message_id="m1@x.example",
            subject="Grüße",
            from_=Address(name="Jürgen", address="j@x.example"),
            to=(Address(address="support@acme.example"),),
        ),
        defects=("MissingHeaderBodySeparatorDefect",),
        raw=RAW,
    )


EVENTS: list[Event] = [
    _received(),
    LetterDecided(
        event_id="d1",
        occurred_at=AT,
        mailbox_id="support",
        letter_id="e1",
        message_id="m1@x.example",
        rules=(RuleOutcome(rule_id="ack", rule_name="Ack", matched=False, failed_condition=0),),
        skipped_because="mailing list",
    ),
    ReplySent(
        event_id="s1", occurred_at=AT, reply_id="r1", mailbox_id="support", message_id="x", to=("a@x",)
    ),
    ReplyFailed(
        event_id="f1", occurred_at=AT, reply_id="r1", mailbox_id="support", reason="550", smtp_code=550
    ),
    CaseCreated(
        event_id="c1",
        occurred_at=AT,
        case_id="c1",
        organization="acme",
        mailbox_id="support",
        mailbox_email="support@acme.example",
        subject="Help",
        description="text",
        reporter_email="a@x",
        tags=("vip",),
        letter_id="e1",
        message_id="m1",
        thread_id="m1",
    ),
    IngestCheckpoint(
        event_id="i1", occurred_at=AT, mailbox_id="support", folder="INBOX", uidvalidity=7, last_uid=9
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_an_event_round_trips_through_bytes(event: Event) -> None:
    data = event.to_bytes()

    assert parse_event(type(event), data) == event
    assert event_type_of(data) == type(event).__name__
    assert json.loads(data)["schema_version"] == 1


def test_raw_bytes_survive_exactly_and_travel_as_base64() -> None:
    data = _received().to_bytes()

    assert parse_event(LetterReceived, data).raw == RAW
    assert json.loads(data)["raw"] != RAW.decode("latin-1")


def test_the_sender_header_travels_as_from() -> None:
    value = json.loads(_received().to_bytes())

    assert value["headers"]["from"] == {"name": "Jürgen", "address": "j@x.example"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "expected a LetterReceived, got an empty message"),
        (b"", "not a valid LetterReceived"),
        (b"not json", "not a valid LetterReceived"),
        (b"[1, 2]", "not a valid LetterReceived"),
        (b'{"event_id": "e1"}', "occurred_at: Field required"),
        (ReplySent(**EVENTS[2].model_dump()).to_bytes(), "event_type"),
        (_received().to_bytes().replace(b'"uid":42', b'"uid":"many"'), "uid"),
        (_received().to_bytes().replace(b'"uid":42', b'"uid":42,"colour":"red"'), "colour"),
        (_received().to_bytes().replace(b'"schema_version":1', b'"schema_version":2'), "schema_version"),
    ],
    ids=["none", "empty", "not json", "list", "missing", "other type", "bad type", "extra", "version"],
)
def test_bad_bytes_are_an_event_error_naming_the_problem(data: bytes | None, expected: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(LetterReceived, data)

    assert expected in str(caught.value)
    assert "pydantic" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"event_type": "ReplySent", "x": 1}', "ReplySent"),
        (b'{"event_id": "e1"}', None),
        (b'{"event_type": 5}', None),
        (b"[]", None),
        (b"\xff not json", None),
    ],
)
def test_event_type_of_reads_only_the_type(data: bytes, expected: str | None) -> None:
    assert event_type_of(data) == expected


def test_events_are_frozen() -> None:
    event = _received()

    with pytest.raises(ValidationError):
        event.uid = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("error", "reason", "error_type"),
    [
        (ValueError("bad header"), "bad header", "ValueError"),
        (KeyError(), "KeyError", "KeyError"),
        (EventError("not a valid ReplySent: to: Field required"), "not a valid ReplySent", "EventError"),
    ],
)
def test_dead_letter_names_the_error(error: BaseException, reason: str, error_type: str) -> None:
    dead = DeadLetter.of("matcher", error, "letters", b"orig", "event", partition=1, offset=5)

    assert reason in dead.reason
    assert dead.error_type == error_type


def test_dead_letter_keeps_where_the_original_came_from_and_its_bytes() -> None:
    dead = DeadLetter.of(
        "matcher",
        ValueError("x"),
        "letters",
        RAW,
        "letter",
        partition=2,
        offset=9,
        key=b"sup\xffport",
        mailbox_id="support",
    )
    again = parse_event(DeadLetter, dead.to_bytes())

    assert (again.source_topic, again.source_partition, again.source_offset) == ("letters", 2, 9)
    assert again.source_key == "sup\ufffdport"
    assert again.mailbox_id == "support"
    assert again.original == RAW
    assert again.original_kind == "letter"


def test_a_retried_dead_letter_keeps_its_id_and_another_message_gets_another() -> None:
    first = DeadLetter.of("matcher", ValueError("x"), "letters", b"a", "event", partition=0, offset=5)
    retried = DeadLetter.of("matcher", ValueError("y"), "letters", b"a", "event", partition=0, offset=5)
    other = DeadLetter.of("matcher", ValueError("x"), "letters", b"a", "event", partition=0, offset=6)

    assert first.event_id == retried.event_id
    assert first.event_id != other.event_id


def test_a_dead_letter_always_fits_its_limit_keeping_the_size_and_hash_of_the_whole_original() -> None:
    original = bytes(range(256)) * (80 * 1024)  # 20 MiB
    limit = 16 * 1024 * 1024

    dead = DeadLetter.of(
        "matcher",
        ValueError("x" * 100_000),
        "letters",
        original,
        "event",
        partition=0,
        offset=1,
        max_bytes=limit,
    )
    data = dead.to_bytes()

    assert len(data) <= limit
    again = parse_event(DeadLetter, data)
    assert again.original_truncated is True
    assert again.original == original[: len(again.original)] and len(again.original) > limit // 2
    assert (again.original_size, again.original_sha256) == (
        len(original),
        hashlib.sha256(original).hexdigest(),
    )
    assert len(again.reason) <= 10_000


def test_a_small_dead_letter_keeps_its_whole_original() -> None:
    dead = DeadLetter.of("matcher", ValueError("x"), "letters", RAW, "letter", partition=0, offset=1)

    assert (dead.original, dead.original_truncated, dead.original_size) == (RAW, False, len(RAW))
    assert dead.original_sha256 == hashlib.sha256(RAW).hexdigest()
