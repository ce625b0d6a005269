"""Pure: which folder keeps a mailbox's sent replies, and what an IMAP server's answers mean.

Values in, values out: the IMAP edge (`responder/imap.py`) asks the server and calls these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date

__all__ = [
    "SENT_FLAG",
    "appended_uid",
    "appended_uids",
    "message_id_of_header",
    "message_id_search",
    "sent_folder",
    "temporary_refusal",
]

SENT_FLAG = b"\\Sent"
"""The SPECIAL-USE attribute (RFC 6154) of the folder a mail client keeps sent mail in."""

_APPENDUID_SET = re.compile(rb"\[APPENDUID (\d+) ([\d:,]+)\]", re.IGNORECASE)
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<?([^<>\s]+)>?", re.IGNORECASE | re.MULTILINE)
# RFC 5530 response codes that say "not now" rather than "never".
_TEMPORARY = re.compile(r"\[(UNAVAILABLE|INUSE|SERVERBUG|LIMIT)\]", re.IGNORECASE)


def sent_folder(listing: Iterable[tuple[Sequence[bytes], object, str]], fallback: str) -> tuple[str, bool]:
    """The folder marked \\Sent in a LIST answer (flags, delimiter, name), else `fallback`; and whether
    that folder exists already."""
    names = []
    for flags, _, name in listing:
        if any(f.lower() == SENT_FLAG.lower() for f in flags):
            return name, True
        names.append(name)
    return fallback, fallback in names


def appended_uid(answer: bytes | str | None) -> tuple[int, int] | None:
    """(UIDVALIDITY, UID) of an appended message from the server's APPENDUID code (RFC 4315), if given."""
    found = appended_uids(answer, 1)
    return (found[0], found[1][0]) if found else None


def appended_uids(answer: bytes | str | None, count: int) -> tuple[int, list[int]] | None:
    """(UIDVALIDITY, UIDs in order) of `count` messages appended at once (MULTIAPPEND, RFC 3502), from
    the APPENDUID code's UID set ("5:9", "5,7:8"); None when the server gives none or they do not add up."""
    if answer is None:
        return None
    found = _APPENDUID_SET.search(answer.encode() if isinstance(answer, str) else answer)
    if found is None:
        return None
    uids: list[int] = []
    for part in found.group(2).split(b","):
        low, _, high = part.partition(b":")
        first, last = int(low), int(high or low)
        uids.extend(range(min(first, last), max(first, last) + 1))
    return (int(found.group(1)), uids) if len(uids) == count else None


def message_id_search(message_ids: Sequence[str], since: date | None = None) -> list[object]:
    """IMAP SEARCH criteria for the messages whose Message-ID header is any of `message_ids` (without
    brackets): `OR (HEADER Message-ID <a>) (OR ...)`, for imapclient's `search`; with `since`, only among
    messages of that internal date or later (the server need not read every header of a large folder)."""
    if not message_ids:
        raise ValueError("no Message-ID to search for")
    criteria: list[object] = ["HEADER", "Message-ID", f"<{message_ids[-1]}>"]
    for message_id in reversed(message_ids[:-1]):
        criteria = ["OR", ["HEADER", "Message-ID", f"<{message_id}>"], criteria]
    return criteria if since is None else ["SINCE", since, *criteria]


def message_id_of_header(header: bytes) -> str | None:
    """The Message-ID (without brackets) in a fetched `Message-ID: <...>` header block."""
    found = _MESSAGE_ID.search(header)
    return found.group(1).decode("utf-8", "replace") if found else None


def temporary_refusal(answer: str) -> bool:
    """Whether an IMAP NO answer is temporary (the server is busy or down for a moment)."""
    return _TEMPORARY.search(answer) is not None
