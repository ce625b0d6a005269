"""Pure: a reply's bytes written directly, for the common case (ASCII addresses, printable header values,
words that fit a line): the message `responder.compose.compose` makes, at a fraction of the cost.

The same headers in the same order, saying the same when read back, and the same parts with the same
contents (ASCII header lines byte for byte; the multipart boundary comes from a hash, not at random).
`reply_bytes` returns None for anything else (SMTPUTF8 addresses, control characters, a literal "=?", a
word longer than a line, ...): the email package then composes the reply, and refuses what it refuses.
Headers are folded at whitespace to 78 characters; non-ASCII subjects and display names are UTF-8
encoded-words (RFC 2047) of at most 75 characters, split between characters (where the email package
splits one inside a word and reads its own header back wrong, these bytes keep the text whole); bodies
are encoded as `EmailMessage.set_content` encodes them (7bit, 8bit, quoted-printable or base64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from email import quoprimime
from email.utils import format_datetime

from responder.render import RenderedReply
from runtime.text import html_to_text
from schemas.events import Address
from schemas.ids import LOOP_MARKER_HEADER

__all__ = ["reply_bytes"]

_MAX_LINE = 78
_MAX_ID_LINE = 998
"""`policy.default.max_line_length`: header lines are folded to it, body lines over it are encoded."""
_MAX_WORD = 75
"""RFC 2047: an encoded-word is at most 75 characters."""
_CRLF = "\r\n"

_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_ATOM = re.compile(_ATEXT)
_ID = re.compile(r"[!-;=?-~]+")
"""A message id as In-Reply-To and References carry it (unstructured): printable ASCII, no space, < or >."""
_SPECIALS = frozenset('()<>@,:;."[]\\')
"""A display name with one of these is a quoted-string (`email.headerregistry.Address`)."""
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
"""RFC 2047 5(3): what a Q-encoded word may carry as itself in a phrase (and so anywhere)."""
_NEWLINES = re.compile(r"\r\n|\r|\n")
_WORD_OVERHEAD = len("=?utf-8?q??=")


def reply_bytes(
    reply: RenderedReply,
    sender: Address,
    to: tuple[Address, ...],
    message_id: str,
    in_reply_to: str,
    references: tuple[str, ...],
    now: datetime,
    auto: bool = True,
) -> bytes | None:
    """The reply `responder.compose.compose` makes of these values, as bytes for SMTP (CRLF line ends), or
    None when it is not the common case and the email package must compose it."""
    head = _headers(reply.subject, sender, to, message_id, in_reply_to, references, now, auto)
    if head is None or reply.type not in ("plain", "html"):
        return None
    if reply.type == "plain":
        body = _body(reply.body)
        if body is None:
            return None
        cte, data = body
        return (
            f'{head}Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'
            "MIME-Version: 1.0\r\n\r\n"
        ).encode("ascii") + data
    text, html = _body(html_to_text(reply.body)), _body(reply.body)
    if text is None or html is None:
        return None
    parts = (
        f'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: {text[0]}\r\n\r\n'.encode()
        + text[1],
        f'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: {html[0]}\r\n'
        "MIME-Version: 1.0\r\n\r\n".encode()
        + html[1],
    )
    boundary = _boundary(message_id, parts)
    return b"".join(
        (
            f'{head}MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
            f"\r\n--{boundary}\r\n".encode("ascii"),
            parts[0],
            f"\r\n--{boundary}\r\n".encode("ascii"),
            parts[1],
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        )
    )


def _boundary(message_id: str, parts: tuple[bytes, ...]) -> str:
    """A boundary that occurs in no part: from a hash of the message id and the parts (so the same reply
    gets the same bytes), another one in the unlikely case it does."""
    digest = hashlib.sha256(message_id.encode("ascii"))
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    while True:
        boundary = "=_" + digest.hexdigest()[:32]
        if not any(boundary.encode("ascii") in part for part in parts):
            return boundary
        digest.update(b"\x00")


# Headers


def _headers(
    subject: str,
    sender: Address,
    to: tuple[Address, ...],
    message_id: str,
    in_reply_to: str,
    references: tuple[str, ...],
    now: datetime,
    auto: bool,
) -> str | None:
    """The header block up to the MIME headers, or None when a value is not the common case."""
    if not to or not _is_dot_atom_id(message_id) or not _is_id(in_reply_to):
        return None
    ids = tuple(dict.fromkeys(references))
    if not all(_is_id(v) for v in ids):
        return None
    recipients: list[_Word] = []
    for i, address in enumerate(to):
        words = _address_words(address, last=i == len(to) - 1)
        if words is None:
            return None
        recipients += words
    sender_words = _address_words(sender, last=True)
    subject_words = _subject_words(subject)
    if sender_words is None or subject_words is None:
        return None
    lines = [
        _folded("From", sender_words),
        _folded("To", recipients),
        _folded("Subject", subject_words),
        _folded("Date", [(False, format_datetime(now))]),
        _folded("Message-ID", [(False, f"<{message_id}>")], ids=True),
        _folded("In-Reply-To", [(False, f"<{in_reply_to}>")], ids=True),
    ]
    if ids:
        lines.append(_folded("References", [(False, f"<{v}>") for v in ids], ids=True))
    if auto:
        lines += ["Auto-Submitted: auto-replied\r\n", "X-Auto-Response-Suppress: All\r\n"]
    lines.append(_folded(LOOP_MARKER_HEADER, [(False, sender.address)]))
    if any(line is None for line in lines):
        return None
    return "".join(line for line in lines if line is not None)


def _is_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None and "=?" not in value


def _is_dot_atom_id(value: str) -> bool:
    left, at, right = value.rpartition("@")
    return bool(at) and _is_addr_part(left) and _is_addr_part(right)


def _is_addr_part(value: str) -> bool:
    return _DOT_ATOM.fullmatch(value) is not None and "=?" not in value


_Word = tuple[bool, str]
"""A header word: (False, text written as it is) or (True, text to write as encoded-words)."""


def _address_words(address: Address, last: bool) -> list[_Word] | None:
    """`address` as `Display Name <local@domain>` words (the name normalized as compose does), a comma
    after it unless it is the `last` of a list; None when the address or the name is not the common case."""
    local, at, domain = address.address.rpartition("@")
    if not at or not _is_addr_part(local) or not _is_addr_part(domain):
        return None
    comma = "" if last else ","
    name = " ".join(address.name.split())
    if not name:
        return [(False, address.address + comma)]
    if not name.isprintable() or "=?" in name:
        return None
    spec: _Word = (False, f"<{address.address}>{comma}")
    if name.isascii() and _SPECIALS.isdisjoint(name):  # printable ASCII without specials: atoms
        return [(False, w) for w in name.split(" ")] + [spec]
    if name.isascii():
        return [(False, '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'), spec]
    # Atoms as they are and each run of other words as one encoded-word: between two encoded-words of a
    # display name, RFC 2047 readers drop the space and the email package's parser keeps it.
    out: list[_Word] = []
    for encode, text in _runs(name.split(" "), lambda word: _ATOM.fullmatch(word) is not None):
        if encode:
            run = _Run(text)
            text = run.next_word(_MAX_WORD) or ""
            if not run.done:
                return None
        out.append((False, text))
    return [*out, spec]


def _subject_words(subject: str) -> list[_Word] | None:
    """The subject's words: ASCII words as they are, each run of other words (with the spaces between
    them) to be encoded; None for a subject that is empty, not one line of single spaces, or has "=?"."""
    words = subject.split(" ")
    if not subject or not subject.isprintable() or "=?" in subject or "" in words:
        return None
    return _runs(words, str.isascii)


def _runs(words: list[str], literal: Callable[[str], bool]) -> list[_Word]:
    """`words` with each run of those that are not `literal` joined, to be encoded together."""
    out: list[_Word] = []
    for word in words:
        if literal(word):
            out.append((False, word))
        elif out and out[-1][0]:
            out[-1] = (True, f"{out[-1][1]} {word}")
        else:
            out.append((True, word))
    return out


def _folded(name: str, words: Iterable[_Word], ids: bool = False) -> str | None:
    """The header line `name: words`, folded before a space to at most 78 characters a line; None when a
    word written as it is does not fit on a line. `ids`: the words are message ids, which must be read as
    written (the email package would write a long one as encoded-words, which breaks threading at the
    receiver): one longer than a line goes on a line of its own, up to RFC 5322's 998 characters."""
    words = list(words)
    if not any(encode for encode, _ in words):
        value = " ".join(text for _, text in words)
        if len(name) + 2 + len(value) > _MAX_LINE and 1 + len(value) <= _MAX_LINE:
            # As the email package folds it: a value that fits on a line of its own goes there whole.
            return f"{name}:{_CRLF} {value}{_CRLF}"
    lines: list[str] = []
    line = name + ":"
    first = True
    for encode, text in words:
        if not encode:
            if len(line) + 1 + len(text) <= _MAX_LINE:
                line += " " + text
            elif ids and _MAX_LINE < 1 + len(text) <= _MAX_ID_LINE:
                # An id longer than a line: on the name's line when first, else on a line of its own.
                if not first:
                    lines.append(line)
                    line = ""
                line += " " + text
            elif first or 1 + len(text) > _MAX_LINE:
                return None
            else:
                lines.append(line)
                line = " " + text
        else:
            run = _Run(text)
            while not run.done:
                word = run.next_word(_MAX_LINE - len(line) - 1)
                if word is None:  # not even one character fits what is left of the line
                    lines.append(line)
                    line = ""
                else:
                    line += " " + word
        first = False
    lines.append(line)
    return _CRLF.join(lines) + _CRLF


class _Run:
    """Text written as UTF-8 encoded-words, Q or B, whichever is shorter, split between characters."""

    def __init__(self, text: str) -> None:
        self.pieces = [c.encode("utf-8") for c in text]
        data = b"".join(self.pieces)
        q_length = sum(1 if b in _Q_SAFE or b == 0x20 else 3 for b in data)
        self.q = q_length <= (len(data) + 2) // 3 * 4
        if self.q:
            self.sizes = [sum(1 if b in _Q_SAFE or b == 0x20 else 3 for b in p) for p in self.pieces]
        else:
            self.sizes = [len(p) for p in self.pieces]
        self.start = 0

    @property
    def done(self) -> bool:
        return self.start >= len(self.pieces)

    def next_word(self, room: int) -> str | None:
        """The next encoded-word, at most `room` characters (and 75); None when not one character fits."""
        capacity = min(_MAX_WORD, room) - _WORD_OVERHEAD
        end, used = self.start, 0
        while end < len(self.pieces):
            grown = used + self.sizes[end]
            if (grown if self.q else (grown + 2) // 3 * 4) > capacity:
                break
            used, end = grown, end + 1
        if end == self.start:
            if room >= _MAX_WORD:  # a UTF-8 character takes at most 12 characters (=XX four times)
                raise AssertionError("an encoded-word cannot hold one character")
            return None
        chunk = b"".join(self.pieces[self.start : end])
        self.start = end
        if self.q:
            return f"=?utf-8?q?{_q(chunk)}?="
        return f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?="


def _q(data: bytes) -> str:
    return "".join(chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in data)


# Bodies


def _body(text: str) -> tuple[str, bytes] | None:
    """`text` as `EmailMessage.set_content(text)` encodes it (utf-8, `policy.default`): line breaks
    normalized, a line break at the end, 7bit or 8bit when every line fits 78 bytes, else the shorter of
    quoted-printable and base64 (judged on the first ten lines); with CRLF line ends. None for text that
    is not UTF-8 (lone surrogates), which the email package refuses."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    lines = data.splitlines()
    if max((len(line) for line in lines), default=0) <= _MAX_LINE:
        return ("7bit" if data.isascii() else "8bit"), b"\r\n".join(lines) + b"\r\n"
    sniff = b"\n".join(lines[:10]) + b"\n"
    sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), _MAX_LINE)
    normal = b"\n".join(lines) + b"\n"
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        step = _MAX_LINE // 4 * 3
        payload = "".join(
            binascii.b2a_base64(normal[i : i + step]).decode("ascii") for i in range(0, len(normal), step)
        )
        return "base64", payload.replace("\n", _CRLF).encode("ascii")
    payload = sniff_qp if len(lines) <= 10 else quoprimime.body_encode(normal.decode("latin-1"), _MAX_LINE)
    return "quoted-printable", _CRLF.join(_NEWLINES.split(payload)).encode("ascii")
