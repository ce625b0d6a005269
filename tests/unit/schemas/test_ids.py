"""Deterministic ids: equal facts give equal ids, any changed fact a different one."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from schemas.ids import (
    LOOP_MARKER_HEADER,
    case_id,
    deterministic_id,
    lead_id,
    letter_id,
    reply_id,
    reply_message_id,
)


def test_the_same_facts_give_the_same_id() -> None:
    assert deterministic_id("kind", "a", 1, None) == deterministic_id("kind", "a", 1, None)
    assert letter_id("support", "INBOX", 7, 42) == letter_id("support", "INBOX", 7, 42)


def test_ids_are_uuid5_strings() -> None:
    made = uuid.UUID(lead_id("support", "root@customer.example"))

    assert made.version == 5
    assert str(made) == lead_id("support", "root@customer.example")


@pytest.mark.parametrize(
    "changed",
    [
        ("sales", "INBOX", 7, 42),
        ("support", "Archive", 7, 42),
        ("support", "INBOX", 8, 42),
        ("support", "INBOX", 7, 43),
    ],
    ids=["mailbox", "folder", "uidvalidity", "uid"],
)
def test_letter_id_depends_on_each_coordinate(changed: tuple[str, str, int, int]) -> None:
    assert letter_id(*changed) != letter_id("support", "INBOX", 7, 42)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (lambda: lead_id("support", "t@x"), lambda: case_id("support", "t@x")),
        (lambda: lead_id("support", "t@x"), lambda: lead_id("sales", "t@x")),
        (lambda: case_id("support", "t@x"), lambda: case_id("support", "u@x")),
        (lambda: reply_id("support", "m@x", "ack"), lambda: reply_id("support", "m@x", "urgent")),
        (lambda: reply_id("support", "m@x", "ack"), lambda: reply_id("support", "n@x", "ack")),
        (lambda: deterministic_id("a", "b"), lambda: deterministic_id("b", "a")),
        (lambda: deterministic_id("k", "a", "b"), lambda: deterministic_id("k", "ab")),
        (lambda: deterministic_id("k", 1), lambda: deterministic_id("k", 1, None)),
    ],
    ids=[
        "lead vs case",
        "mailbox",
        "thread",
        "rule",
        "message",
        "kind vs part",
        "split parts",
        "extra part",
    ],
)
def test_different_facts_give_different_ids(one: Callable[[], str], other: Callable[[], str]) -> None:
    assert one() != other()


@pytest.mark.parametrize(
    ("mailbox_email", "expected"),
    [
        ("support@acme.example", "reply-r1@acme.example"),
        ("Support@Sub.Acme.Example", "reply-r1@Sub.Acme.Example"),
        ("support@", "reply-r1@mailroom.invalid"),
    ],
)
def test_reply_message_id_is_at_the_mailboxs_domain(mailbox_email: str, expected: str) -> None:
    assert reply_message_id("r1", mailbox_email) == expected


def test_loop_marker_header_is_x_loop() -> None:
    assert LOOP_MARKER_HEADER == "X-Loop"
