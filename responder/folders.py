"""Pure: which folder keeps a mailbox's sent replies, and what an IMAP server's answers mean.

Values in, values out: the IMAP edge (`responder/imap.py`) asks the server and calls these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["SENT_FLAG", "appended_uid", "sent_folder", "temporary_refusal"]

SENT_FLAG = b"\\Sent"
"""The SPECIAL-USE attribute (RFC 6154) of the folder a mail client keeps sent mail in."""

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
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
    if answer is None:
        return None
    found = _APPENDUID.search(answer.encode() if isinstance(answer, str) else answer)
    return (int(found.group(1)), int(found.group(2))) if found else None


def temporary_refusal(answer: str) -> bool:
    """Whether an IMAP NO answer is temporary (the server is busy or down for a moment)."""
    return _TEMPORARY.search(answer) is not None
