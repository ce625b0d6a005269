"""Where a folder starts, how far it was read, and which letters of a recreated folder were read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.progress import FolderProgress, fingerprint, message_id_in
from schemas.events import IngestCheckpoint, parse_event

T0 = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)


def test_message_id_is_found_in_a_whole_letter_and_in_a_fetched_header_field() -> None:
    letter = b"From: a@x.test\r\nMessage-ID: <abc@x.test>\r\nSubject: hi\r\n\r\nMessage-ID: <body@x.test>\r\n"
    assert message_id_in(letter) == "abc@x.test"
    assert message_id_in(b"Message-Id: <abc@x.test>\r\n\r\n") == "abc@x.test"
    assert message_id_in(b"message-id:\r\n <folded@x.test>\r\n\r\n") == "folded@x.test"


def test_a_letter_without_message_id_has_an_empty_one_only_its_header_counts() -> None:
    assert message_id_in(b"Subject: none\r\n\r\nMessage-ID: <in-body@x.test>\r\n") == ""
    assert message_id_in(b"") == ""


def test_a_new_folder_starts_after_the_letters_it_holds() -> None:
    start = FolderProgress.starting("support", "INBOX", 7, uidnext=101, now=T0)
    assert (start.uidvalidity, start.last_uid, start.recheck, start.recent_since) == (7, 100, False, T0)
    assert FolderProgress.starting("support", "INBOX", 7, uidnext=1, now=T0).last_uid == 0


def test_a_folder_read_from_a_date_checks_each_letter_by_arrival_to_the_second() -> None:
    since = T0.replace(microsecond=500_000)
    start = FolderProgress.starting_from("support", "INBOX", 7, since)
    assert (start.last_uid, start.recheck, start.recent_since) == (0, True, T0)
    assert start.unread(1, T0, 100, "a@x.test")  # the same second, though INTERNALDATE has no fraction
    assert not start.unread(2, T0 - timedelta(seconds=1), 100, "b@x.test")


def test_fingerprints_of_read_letters_are_kept_newest_last_up_to_the_limit() -> None:
    progress = FolderProgress("support", "INBOX", 7, 0, (), None)
    letters = [(f"m{n}@x.test", 1000 + n, T0 + timedelta(minutes=n)) for n in range(5)]
    after = progress.advanced(5, letters, keep=3)
    assert after.last_uid == 5
    assert [entry.partition("@")[0] for entry in after.recent] == [
        fingerprint(mid, size) for mid, size, _ in letters[2:]
    ]
    # The forgotten letters arrived up to T0 + 1 min: everything before T0 + 1 min + 1 s counts as read.
    assert after.recent_since == T0 + timedelta(minutes=1, seconds=1)


def test_a_recreated_folder_is_read_from_uid_1_skipping_letters_read_before() -> None:
    read = FolderProgress.starting("support", "INBOX", 7, uidnext=1, now=T0).advanced(
        2, [("a@x.test", 500, T0 + timedelta(seconds=5)), ("b@x.test", 600, T0 + timedelta(seconds=6))]
    )
    again = read.renumbered(9)
    assert (again.uidvalidity, again.last_uid, again.recheck) == (9, 0, True)
    assert not again.unread(1, T0 + timedelta(seconds=5), 500, "a@x.test")
    assert not again.unread(2, T0 + timedelta(hours=1), 600, "b@x.test")  # copied anew: a new arrival time
    assert again.unread(3, T0 + timedelta(hours=1), 601, "b@x.test")  # another letter under the same id
    assert again.unread(4, T0 + timedelta(hours=1), 700, "c@x.test")
    assert not again.unread(5, T0 - timedelta(days=1), 800, "old@x.test")  # before reading started
    assert not again.caught_up().recheck


def test_progress_travels_as_its_checkpoint() -> None:
    progress = FolderProgress.starting_from("support", "Orders", 7, T0).advanced(
        3, [("a@x.test", 500, T0 + timedelta(seconds=5))]
    )
    point = parse_event(IngestCheckpoint, progress.checkpoint(T0).to_bytes())
    assert (point.mailbox_id, point.folder, point.uidvalidity, point.last_uid) == ("support", "Orders", 7, 3)
    assert FolderProgress.of(point) == progress


def test_checkpoints_written_before_fingerprints_existed_still_read() -> None:
    old = b'{"event_id":"x","occurred_at":"2026-01-01T00:00:00Z","mailbox_id":"s","folder":"INBOX",'
    old += b'"uidvalidity":3,"last_uid":9,"event_type":"IngestCheckpoint"}'
    progress = FolderProgress.of(parse_event(IngestCheckpoint, old))
    assert (progress.last_uid, progress.recent, progress.recent_since, progress.recheck) == (
        9,
        (),
        None,
        False,
    )
