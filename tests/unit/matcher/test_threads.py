"""Thread placement: the nearest known ancestor's thread, else a thread of its own; replays agree."""

from __future__ import annotations

import pytest

from matcher.threads import ThreadPlace, place_in_thread

# Message-ID -> thread (its first letter's Message-ID), as the matcher's table remembers them.
KNOWN = {
    "root@c": "root@c",
    "reply-1@acme": "root@c",
    "answer@c": "root@c",
    "other-root@c": "other-root@c",
}


@pytest.mark.parametrize(
    ("message_id", "in_reply_to", "references", "expected"),
    [
        ("new@c", (), (), ThreadPlace("new@c", starts_thread=True)),
        ("new@c", ("reply-1@acme",), (), ThreadPlace("root@c", starts_thread=False)),
        ("new@c", (), ("root@c", "reply-1@acme"), ThreadPlace("root@c", starts_thread=False)),
        ("new@c", (), ("unknown-1@c", "root@c", "unknown-2@c"), ThreadPlace("root@c", starts_thread=False)),
        ("new@c", ("unknown@c",), (), ThreadPlace("new@c", starts_thread=True)),
        ("new@c", ("unknown@c",), ("gone@c", "lost@c"), ThreadPlace("new@c", starts_thread=True)),
        ("new@c", ("other-root@c",), ("root@c",), ThreadPlace("other-root@c", starts_thread=False)),
        ("new@c", ("unknown@c",), ("root@c",), ThreadPlace("root@c", starts_thread=False)),
        ("new@c", (), ("other-root@c", "root@c"), ThreadPlace("root@c", starts_thread=False)),
        ("new@c", ("new@c",), ("new@c",), ThreadPlace("new@c", starts_thread=True)),
    ],
    ids=[
        "no parents",
        "in-reply-to only",
        "references only",
        "references with unknown ones",
        "unknown parent",
        "unknown parents everywhere",
        "in-reply-to wins over references",
        "references when in-reply-to is unknown",
        "newest reference first",
        "refers to itself",
    ],
)
def test_placement(
    message_id: str, in_reply_to: tuple[str, ...], references: tuple[str, ...], expected: ThreadPlace
) -> None:
    assert place_in_thread(message_id, in_reply_to, references, KNOWN.get) == expected


@pytest.mark.parametrize(
    ("message_id", "in_reply_to", "references", "expected"),
    [
        ("root@c", (), (), ThreadPlace("root@c", starts_thread=True)),
        ("answer@c", ("reply-1@acme",), ("root@c",), ThreadPlace("root@c", starts_thread=False)),
        ("answer@c", (), (), ThreadPlace("root@c", starts_thread=False)),
        ("root@c", ("other-root@c",), (), ThreadPlace("root@c", starts_thread=True)),
    ],
    ids=["first letter again", "answer again", "answer without its headers", "first letter, new parent"],
)
def test_a_letter_seen_before_gets_the_same_answer(
    message_id: str, in_reply_to: tuple[str, ...], references: tuple[str, ...], expected: ThreadPlace
) -> None:
    assert place_in_thread(message_id, in_reply_to, references, KNOWN.get) == expected


def test_a_replay_of_a_whole_conversation_gives_the_same_threads() -> None:
    letters = [
        ("a@c", (), ()),
        ("b@acme", ("a@c",), ("a@c",)),
        ("c@c", ("b@acme",), ("a@c", "b@acme")),
        ("x@c", (), ()),
        ("d@c", (), ("a@c", "b@acme", "c@c")),
    ]
    known: dict[str, str] = {}

    def play() -> list[ThreadPlace]:
        places = []
        for message_id, in_reply_to, references in letters:
            place = place_in_thread(message_id, in_reply_to, references, known.get)
            known.setdefault(message_id, place.thread_id)
            places.append(place)
        return places

    first = play()
    assert [p.thread_id for p in first] == ["a@c", "a@c", "a@c", "x@c", "a@c"]
    assert [p.starts_thread for p in first] == [True, False, False, True, False]
    assert play() == first
