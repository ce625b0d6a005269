"""Thread placement: the nearest known id a letter names, else a thread named after the oldest id its
conversation names; arrival order, replays and second copies do not change the answer."""

from __future__ import annotations

import itertools

import pytest

from matcher.threads import ThreadIndex, ThreadPlace

Letter = tuple[str, tuple[str, ...], tuple[str, ...]]  # Message-ID, In-Reply-To, References


def _known() -> ThreadIndex:
    index = ThreadIndex()
    index.remember("box", "root@c", "root@c", True)
    index.remember("box", "reply-1@acme", "root@c", False)
    index.remember("box", "other-root@c", "other-root@c", True)
    return index


@pytest.mark.parametrize(
    ("message_id", "in_reply_to", "references", "expected"),
    [
        ("new@c", (), (), ThreadPlace("new@c", starts_thread=True)),
        ("new@c", ("reply-1@acme",), (), ThreadPlace("root@c", starts_thread=False)),
        ("new@c", (), ("root@c", "reply-1@acme"), ThreadPlace("root@c", starts_thread=False)),
        ("new@c", (), ("unknown-1@c", "root@c", "unknown-2@c"), ThreadPlace("root@c", starts_thread=False)),
        ("new@c", ("unknown@c",), (), ThreadPlace("unknown@c", starts_thread=True)),
        ("new@c", ("unknown@c",), ("gone@c", "lost@c"), ThreadPlace("gone@c", starts_thread=True)),
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
        "unknown parent names the thread",
        "oldest reference names the thread",
        "in-reply-to wins over references",
        "references when in-reply-to is unknown",
        "newest reference first",
        "refers to itself",
    ],
)
def test_placement(
    message_id: str, in_reply_to: tuple[str, ...], references: tuple[str, ...], expected: ThreadPlace
) -> None:
    assert _known().place("box", message_id, in_reply_to, references) == expected


def test_mailboxes_have_their_own_threads() -> None:
    assert _known().place("other-box", "new@c", ("root@c",), ()) == ThreadPlace("root@c", starts_thread=True)


def _play(index: ThreadIndex, letters: list[Letter]) -> dict[str, ThreadPlace]:
    places = {}
    for message_id, in_reply_to, references in letters:
        place = index.place("box", message_id, in_reply_to, references)
        index.remember("box", message_id, place.thread_id, place.starts_thread, (*in_reply_to, *references))
        places[message_id] = place
    return places


CONVERSATION: list[Letter] = [
    ("a@c", (), ()),
    ("b@acme", ("a@c",), ("a@c",)),
    ("c@c", ("b@acme",), ("a@c", "b@acme")),
    ("d@c", (), ("a@c", "b@acme", "c@c")),  # References only
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))), ids=str)
def test_any_arrival_order_gives_one_thread_and_one_first_letter(order: tuple[int, ...]) -> None:
    places = _play(ThreadIndex(), [CONVERSATION[i] for i in order])

    assert {p.thread_id for p in places.values()} == {"a@c"}
    assert [mid for mid, p in places.items() if p.starts_thread] == [CONVERSATION[order[0]][0]]


def test_a_reply_with_only_in_reply_to_joins_its_parents_thread() -> None:
    places = _play(ThreadIndex(), [*CONVERSATION[:2], ("e@c", ("b@acme",), ())])

    assert places["e@c"] == ThreadPlace("a@c", starts_thread=False)


def test_a_reply_with_only_in_reply_to_before_its_parent_cannot_know_the_root() -> None:
    """Nothing names the root: the reply starts a thread named after its parent, which the parent
    and everything naming it then join. Replies that carry References (RFC 5322) do not split."""
    places = _play(ThreadIndex(), [CONVERSATION[0], ("e@c", ("b@acme",), ()), CONVERSATION[1]])

    assert places["e@c"] == ThreadPlace("b@acme", starts_thread=True)
    assert places["b@acme"] == ThreadPlace("b@acme", starts_thread=False)


def test_a_replay_and_a_second_copy_get_the_same_answers() -> None:
    index = ThreadIndex()
    first = _play(index, [CONVERSATION[2], *CONVERSATION])  # the reply c@c first, then all, c@c twice

    again = _play(index, CONVERSATION)

    assert again == {mid: first[mid] for mid, _, _ in CONVERSATION}
    assert first["c@c"].starts_thread and not first["a@c"].starts_thread
    assert {p.thread_id for p in first.values()} == {"a@c"}


def test_a_reply_of_ours_joins_the_thread_so_an_answer_to_it_does_too() -> None:
    index = ThreadIndex()
    _play(index, [("q@c", (), ())])
    index.remember("box", "reply-1@acme", "q@c", False)

    assert index.place("box", "answer@c", ("reply-1@acme",), ()) == ThreadPlace("q@c", starts_thread=False)
