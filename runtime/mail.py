"""Pure: what every worker needs of the email package: a letter's bytes repaired before they are parsed,
`policy.default` made fast for mailroom's volumes, and a plain header block read without the parser.

The standard header registry builds a new class for every header it parses or sets (a `type(...)` call in
`HeaderRegistry.__getitem__`); composing one reply set a dozen headers and paid for a dozen classes.
`POLICY` is `policy.default` whose registry keeps each class once made; headers parse and fold exactly as
the standard ones do.
"""

from __future__ import annotations

import re
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.policy import Policy
from typing import Any, cast

__all__ = ["POLICY", "SMTPUTF8_POLICY", "SMTP_POLICY", "plain_header_block"]


class _CachedRegistry(HeaderRegistry):
    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(key)
        return made


class _MessageIds(UnstructuredHeader):
    """In-Reply-To and References as the standard registry reads them, folded so that a message id longer
    than a line stays as written on a line of its own (up to RFC 5322's 998 characters): the standard
    folding writes such an id (Outlook's often are) as encoded-words, which a receiver cannot match
    against the letter's Message-ID, and the thread breaks. Shorter ids fold exactly as before."""

    name: str  # BaseHeader's: the registry makes the class with BaseHeader as its second base

    def fold(self, *, policy: Policy) -> str:
        ids = str(self).split()
        width = policy.max_line_length or 78
        if all(len(i) < width for i in ids) or any(len(i) > 996 or not i.isascii() for i in ids):
            return str(BaseHeader.fold(cast(Any, self), policy=policy))
        lines = [f"{self.name}:"]
        for i in ids:
            long_first = len(i) >= width and lines == [f"{self.name}:"]
            if long_first or len(lines[-1]) + 1 + len(i) <= width:
                lines[-1] += " " + i  # it fits, or a long first id stays on the name's line
            else:
                lines.append(" " + i)
        return policy.linesep.join(lines) + policy.linesep


_REGISTRY = _CachedRegistry()
for _name in ("in-reply-to", "references"):
    _REGISTRY.map_to_type(_name, cast("type[BaseHeader]", _MessageIds))

POLICY = policy.default.clone(header_factory=_REGISTRY)
"""`policy.default`, its header classes made once."""
SMTP_POLICY = policy.SMTP.clone(header_factory=_REGISTRY)
"""`policy.SMTP` (CRLF line ends), its header classes made once."""
SMTPUTF8_POLICY = policy.SMTPUTF8.clone(header_factory=_REGISTRY)
"""`policy.SMTPUTF8`, its header classes made once."""


_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_CONTINUATION = (b" ", b"\t")
_FROM_LINE = re.compile(rb"(?im)^from[ \t]*:")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_SEARCH_BYTES = 64 * 1024


def repaired(raw: bytes) -> bytes:
    """A letter's bytes as the parser should read them, for the shapes it reads wrongly: NUL bytes in the
    header block (the parser ends the headers there) are dropped, and text pasted above the header block
    (a forwarded letter saved with a note on top) is skipped up to the header block that has a From."""
    end = _BLANK_LINE.search(raw)
    head_end = end.start() if end else len(raw)
    if b"\x00" in raw[:head_end]:
        raw = raw[:head_end].replace(b"\x00", b"") + raw[head_end:]
    first = raw[: raw.find(b"\n")] if b"\n" in raw else raw
    if not first.strip() or _HEADER_LINE.match(first) or first.startswith(b"From "):
        return raw
    found = _FROM_LINE.search(raw, 0, _SEARCH_BYTES)
    if found is None:
        return raw
    lines = raw[: found.start()].split(b"\n")[:-1]  # the lines above the From line
    start = found.start()
    while lines and (_HEADER_LINE.match(lines[-1]) or lines[-1].startswith(_CONTINUATION)):
        start -= len(lines.pop()) + 1
    return raw[start:]


_PLAIN_HEAD = re.compile(rb"[\t\r\n -~]*")
_FIELD = re.compile(r"[!-9;-~]+:")


def plain_header_block(raw: bytes) -> tuple[list[tuple[str, str]], int] | None:
    """The header fields of repaired bytes as the email parser stores them (name as written, value
    unfolded as `header_source_parse` leaves it), and where the body starts; None unless the block is
    plain: printable ASCII, CRLF or LF line ends, every line a field or a continuation, ended by a blank
    line. Anything else (8-bit bytes, bare CRs, a `From ` line, a line the parser would take for the body)
    is left to the parser, whose defects and recoveries this does not imitate."""
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if i >= 0]
    if not ends:
        return None
    blank = min(ends)  # the line end of the last field, then the blank line
    head_end = blank - 1 if blank and raw[blank - 1] == 0x0D else blank
    if head_end <= 0:
        return None
    head = raw[:head_end]
    if not _PLAIN_HEAD.fullmatch(head) or head.count(b"\r") != head.count(b"\r\n"):
        return None
    fields: list[tuple[str, str]] = []
    lines: list[str] = []
    for line in head.decode("ascii").split("\n"):
        if line[:1] in (" ", "\t"):
            if not lines:
                return None
            lines.append(line + "\n")
            continue
        if not _FIELD.match(line):
            return None
        if lines:
            fields.append(_field(lines))
        lines = [line + "\n"]
    fields.append(_field(lines))
    return fields, blank + (2 if raw[blank + 1] == 0x0A else 3)


def _field(lines: list[str]) -> tuple[str, str]:
    name, value = lines[0].split(":", 1)
    value = value.lstrip(" \t") + "".join(lines[1:])
    return name, value.rstrip("\r\n")
