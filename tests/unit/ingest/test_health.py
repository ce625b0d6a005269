"""The health board: a mailbox's state is its worst folder's, published when it changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.health import HealthBoard

T0 = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_mailbox_is_as_healthy_as_its_worst_folder_and_says_why() -> None:
    clock = Clock()
    board = HealthBoard("host:1", clock)
    board.folder("support", "acme", "INBOX", "ok", "idle", 4)
    board.folder("support", "acme", "Orders", "failing", error="login refused", advice="check the password")
    ((box_id, health),) = board.changes()
    assert health is not None
    assert (box_id, health.state, health.since, health.owner) == ("support", "failing", T0, "host:1")
    assert (health.error, health.advice) == ("login refused", "check the password")
    assert [(f.folder, f.state, f.waiting, f.last_uid) for f in health.folders] == [
        ("INBOX", "ok", "idle", 4),
        ("Orders", "failing", "none", 0),
    ]


def test_only_changes_are_published_and_since_moves_with_the_state() -> None:
    clock = Clock()
    board = HealthBoard("host:1", clock)
    board.folder("support", "acme", "INBOX", "retrying", error="connection refused")
    assert [h.state for _, h in board.changes() if h] == ["retrying"]
    clock.now = T0 + timedelta(seconds=5)
    board.folder("support", "acme", "INBOX", "retrying", error="connection refused")
    assert board.changes() == []
    clock.now = T0 + timedelta(seconds=9)
    board.folder("support", "acme", "INBOX", "ok", "poll", 3)
    ((_, health),) = board.changes()
    assert health is not None
    assert (health.state, health.since, health.error) == ("ok", T0 + timedelta(seconds=9), None)


def test_new_letters_alone_are_published_at_most_every_few_seconds() -> None:
    clock = Clock()
    board = HealthBoard("host:1", clock, letter_every=10)
    board.folder("support", "acme", "INBOX", "ok", "idle", 1)
    assert len(board.changes()) == 1
    clock.now = T0 + timedelta(seconds=3)
    board.letter("support", clock.now)
    assert board.changes() == []  # too soon after the last record
    clock.now = T0 + timedelta(seconds=11)
    ((_, health),) = board.changes()
    assert health is not None and health.last_letter_at == T0 + timedelta(seconds=3)
    assert board.changes() == []


def test_a_mailbox_handed_on_says_stopped_and_a_removed_one_is_deleted() -> None:
    board = HealthBoard("host:1", Clock())
    board.folder("support", "acme", "INBOX", "ok", "idle", 1)
    board.folder("sales", "acme", "INBOX", "ok", "idle", 1)
    board.changes()
    board.stopped("support")
    board.stopped("sales", removed=True)
    changes = dict(board.changes())
    assert changes["sales"] is None
    stopped = changes["support"]
    assert stopped is not None and (stopped.state, stopped.folders) == ("stopped", ())
    assert board.changes() == []
    assert board.state_of("support") is None
