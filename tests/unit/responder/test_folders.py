"""The Sent folder by its \\Sent flag (else the configured name), APPENDUID, temporary refusals."""

from __future__ import annotations

import pytest

from responder.folders import appended_uid, sent_folder, temporary_refusal

LISTING = [((b"\\HasNoChildren",), "/", "INBOX"), ((b"\\HasNoChildren", b"\\Trash"), "/", "Trash")]


@pytest.mark.parametrize(
    ("listing", "fallback", "expected"),
    [
        ([*LISTING, ((b"\\HasNoChildren", b"\\Sent"), "/", "Gesendet")], "Sent", ("Gesendet", True)),
        ([*LISTING, ((b"\\sent",), "/", "Sent Items")], "Sent", ("Sent Items", True)),
        ([*LISTING, ((), "/", "Sent")], "Sent", ("Sent", True)),
        (LISTING, "Sent", ("Sent", False)),
        (LISTING, "Outbox/Replies", ("Outbox/Replies", False)),
        ([], "Sent", ("Sent", False)),
    ],
)
def test_sent_folder(
    listing: list[tuple[tuple[bytes, ...], str, str]], fallback: str, expected: object
) -> None:
    assert sent_folder(listing, fallback) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"[APPENDUID 1700000000 42] Append completed.", (1700000000, 42)),
        ("[appenduid 7 1] done", (7, 1)),
        (b"Append completed.", None),
        (None, None),
    ],
)
def test_appended_uid(answer: bytes | str | None, expected: tuple[int, int] | None) -> None:
    assert appended_uid(answer) == expected


@pytest.mark.parametrize(
    ("answer", "temporary"),
    [
        ("append failed: [UNAVAILABLE] Temporary failure", True),
        ("[INUSE] Mailbox in use", True),
        ("[SERVERBUG] Internal error", True),
        ("[LIMIT] Too many", True),
        ("[OVERQUOTA] Quota exceeded", False),
        ("[TRYCREATE] Mailbox does not exist", False),
        ("Invalid arguments", False),
    ],
)
def test_temporary_refusal(answer: str, temporary: bool) -> None:
    assert temporary_refusal(answer) is temporary
