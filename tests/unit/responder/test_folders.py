"""The Sent folder by its \\Sent flag (else the configured name), APPENDUID, temporary refusals."""

from __future__ import annotations

from datetime import date

import pytest

from responder.folders import (
    appended_uid,
    appended_uids,
    message_id_of_header,
    message_id_search,
    sent_folder,
    temporary_refusal,
)

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


@pytest.mark.parametrize(
    ("answer", "count", "expected"),
    [
        (b"[APPENDUID 38505 3955:3957] MULTIAPPEND completed", 3, (38505, [3955, 3956, 3957])),
        ("[appenduid 7 5,7:8] done", 3, (7, [5, 7, 8])),
        (b"[APPENDUID 7 12] done", 1, (7, [12])),
        (b"[APPENDUID 7 5:6] done", 3, None),  # the server names fewer than were appended
        (b"Append completed.", 2, None),
        (None, 2, None),
    ],
)
def test_appended_uids(answer: bytes | str | None, count: int, expected: object) -> None:
    assert appended_uids(answer, count) == expected


def test_message_id_search_names_every_id_once_in_nested_ors() -> None:
    assert message_id_search(["a@x"]) == ["HEADER", "Message-ID", "<a@x>"]
    assert message_id_search(["a@x", "b@x", "c@x"]) == [
        "OR",
        ["HEADER", "Message-ID", "<a@x>"],
        ["OR", ["HEADER", "Message-ID", "<b@x>"], ["HEADER", "Message-ID", "<c@x>"]],
    ]
    assert message_id_search(["a@x"], since=date(2024, 5, 5)) == [
        "SINCE",
        date(2024, 5, 5),
        "HEADER",
        "Message-ID",
        "<a@x>",
    ]
    with pytest.raises(ValueError, match="no Message-ID"):
        message_id_search([])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Message-ID: <reply-1@acme.example>\r\n\r\n", "reply-1@acme.example"),
        (b"message-id:   <x@y>\r\n", "x@y"),
        (b"Message-ID: bare@host\r\n", "bare@host"),
        (b"\r\n", None),
    ],
)
def test_message_id_of_header(header: bytes, expected: str | None) -> None:
    assert message_id_of_header(header) == expected
