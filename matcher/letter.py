"""Pure: parses a whole letter once into what rules, loop guards and records need; never raises.

The letter's structure is read with the email package's compat32 policy, whose header handling is plain
text: the `policy.default` header registry parses a Content-Type again each time a part is asked for its
type (dozens of times per letter), which made this the matcher's costliest step. Header values are kept
as the letter has them (white space folded); `matcher/view.py` decodes RFC 2047 words where a condition
reads them.
Bodies are therefore found here rather than by `EmailMessage.get_body`, whose attachment test expects a
`policy.default` Content-Disposition object and fails on compat32's text.

The email parser itself (a Python loop over every line) is the rest of that cost: a letter of the shapes
mail programs send (plain ASCII header blocks; one text part, or a multipart/alternative or mixed of
single parts) is cut at its boundaries directly and read as the parser and compat32 would read it;
anything else goes to `parse_letter_reference`, and tests hold the two to the same results.
"""

from __future__ import annotations

import quopri
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import collapse_rfc2231_value, unquote

from runtime.charsets import charset_hint, decode_text
from runtime.mail import plain_header_block, repaired
from runtime.text import html_to_text, unmangle

__all__ = ["ParsedLetter", "parse_letter", "parse_letter_reference"]


class _RawHeaders(Compat32):
    """compat32, but a header value is always the text it was parsed from (8-bit bytes as surrogate
    escapes), never a `Header` object."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_PARSER = BytesParser(_class=EmailMessage, policy=_RawHeaders())


@dataclass(frozen=True)
class ParsedLetter:
    text_body: str
    """The text/plain body; for html-only letters, the html converted to text."""
    html_body: str | None
    content_type: str
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Every header by lower-cased name, all values in order (for loop guards and header conditions)."""
    has_attachments: bool = False
    defects: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def parse_letter(raw: bytes) -> ParsedLetter:
    fast = _parse_plain(raw)
    return fast if fast is not None else parse_letter_reference(raw)


def parse_letter_reference(raw: bytes) -> ParsedLetter:
    """`parse_letter` by the email parser alone: what the fast path must equal, read for every letter
    not of the plain shapes."""
    msg = _PARSER.parsebytes(repaired(raw))
    assert isinstance(msg, EmailMessage)
    defects = [type(d).__name__ for d in msg.defects]
    headers: dict[str, list[str]] = {}
    hint = msg.get_content_charset() or charset_hint(raw)
    for name, value in msg.raw_items():
        headers.setdefault(name.lower(), []).append(_header_text(value, hint))
    plain = _body(msg, "plain", defects)
    html = _body(msg, "html", defects)
    # A plain part left empty beside the html one (some mail programs send that) gives way to it.
    text = plain if plain and plain.strip() else html_to_text(html) if html is not None else plain or ""
    if not text.strip() and msg.get_content_maintype() == "multipart" and not msg.is_multipart():
        # A multipart whose boundary is missing or never used: its body is the letter's text.
        text = _text(msg, defects) or ""
    attachments = _has_attachments(msg, defects)
    return ParsedLetter(
        text_body=text.replace("\r\n", "\n").strip(),
        html_body=html,
        content_type=msg.get_content_type(),
        headers={k: tuple(v) for k, v in headers.items()},
        has_attachments=attachments,
        defects=tuple(dict.fromkeys(defects)),
    )


def _header_text(value: object, charset: str | None) -> str:
    """A header's value on one line; raw 8-bit bytes read in the letter's charset (`unmangle`)."""
    return " ".join(unmangle(str(value), charset).split())


def _body(msg: Message, subtype: str, defects: list[str]) -> str | None:
    try:
        part = _find_body(msg, f"text/{subtype}")
    except Exception as exc:
        defects.append(f"BrokenStructure:{type(exc).__name__}")
        return None
    return None if part is None else _text(part, defects)


def _find_body(part: Message, wanted: str) -> Message | None:
    """`get_body(preferencelist=(subtype,))`: the first `wanted` part, walking as `EmailMessage` does:
    attachments are skipped, and a multipart/related is read through its start part only."""
    if _is_attached(part):
        return None
    ctype = part.get_content_type()
    if ctype.startswith("text/"):
        return part if ctype == wanted else None
    if not ctype.startswith("multipart/") or not part.is_multipart():
        return None
    payload = part.get_payload()
    subparts = [sub for sub in payload if isinstance(sub, Message)] if isinstance(payload, list) else []
    if ctype != "multipart/related":
        return next((found for sub in subparts if (found := _find_body(sub, wanted)) is not None), None)
    start = part.get_param("start")
    candidate = next((sub for sub in subparts if sub["content-id"] == start), None) if start else None
    if candidate is None and subparts:
        candidate = subparts[0]
    return None if candidate is None else _find_body(candidate, wanted)


def _is_attached(part: Message) -> bool:
    """`is_attachment`: the Content-Disposition's value (case aside, parameters aside) is `attachment`."""
    return part.get_content_disposition() == "attachment"


def _text(part: Message, defects: list[str]) -> str | None:
    """A text part's content (transfer encoding undone, charset decoded as `runtime.charsets` reads it)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    text, as_named = decode_text(payload, part.get_content_charset())
    if not as_named:
        defects.append("UndecodableBody")  # read as well as could be, but not in the charset it names
    return text


def _has_attachments(msg: Message, defects: list[str]) -> bool:
    """What a reader calls an attachment: a part (or the whole letter) marked `attachment`, or a named
    part marked nothing that is not a resource of the html (an inline image has a Content-ID)."""
    try:
        for part in msg.walk():
            if _is_attached(part):
                return True
            if (
                part.get_content_disposition() is None
                and not part.is_multipart()
                and part.get_filename()
                and part.get("content-id") is None
            ):
                return True
    except Exception as exc:
        defects.append(f"BrokenStructure:{type(exc).__name__}")
    return False


_TOKEN = rb"[A-Za-z0-9!#$%&'+.^_`{|}~-]+"
_CONTENT_TYPE = re.compile(
    rb"[ \t]*" + _TOKEN + rb"/" + _TOKEN + rb"[ \t\r\n]*"
    rb"(?:;[ \t\r\n]*" + _TOKEN + rb"=(?:" + _TOKEN + rb'|"[^"\\]*")[ \t\r\n]*)*;?[ \t\r\n]*'
)
_PARAM = re.compile(r';[ \t\r\n]*([^=;\s]+)=("[^"]*"|[^;\s]+)')
_MULTIPART = ("multipart/alternative", "multipart/mixed")
_PLAIN_CTE = ("7bit", "8bit", "binary")
_UU = ("x-uuencode", "uuencode", "uue", "x-uue")
_BOUNDARY_LINE = re.compile(rb"(--)?[ \t]*\r?(?=\n|\Z)")
"""The rest of a line that starts with a boundary (the parser's `boundaryre`, line ends being LF or CRLF)."""


class _NotPlain(Exception):
    """The letter is not of a shape the fast path reads: the reference reads it."""


@dataclass(frozen=True)
class _Part:
    fields: list[tuple[str, str]]
    body: bytes
    content_type: str
    params: dict[str, str]

    def first(self, name: str) -> str | None:
        return next((v for k, v in self.fields if k.lower() == name), None)


def _part(raw: bytes, fields: list[tuple[str, str]], body: bytes) -> _Part:
    """A part's header fields read as compat32 reads them: the first Content-Type decides the type
    (`get_content_type`) and parameters (`get_param`, first of each name, one layer of quotes off)."""
    value = next((v for k, v in fields if k.lower() == "content-type"), None)
    if value is None:
        return _Part(fields, body, "text/plain", {})
    if not _CONTENT_TYPE.fullmatch(value.encode("ascii")):
        raise _NotPlain
    kind, _, rest = value.partition(";")
    ctype = kind.strip().lower()
    params: dict[str, str] = {}
    for name, param in _PARAM.findall(";" + rest if rest else ""):
        params.setdefault(name.lower(), param[1:-1] if param.startswith('"') else param)
    return _Part(fields, body, ctype if ctype.count("/") == 1 else "text/plain", params)


def _parse_plain(raw: bytes) -> ParsedLetter | None:
    data = repaired(raw)
    block = plain_header_block(data)
    if block is None:
        return None
    try:
        top = _part(data, block[0], data[block[1] :])
        parts = _parts(top)
    except _NotPlain:
        return None
    defects: list[str] = []
    plain = _plain_body(top, parts, "plain", defects)
    html = _plain_body(top, parts, "html", defects)
    text = plain if plain and plain.strip() else html_to_text(html) if html is not None else plain or ""
    return ParsedLetter(
        text_body=text.replace("\r\n", "\n").strip(),
        html_body=html,
        content_type=top.content_type,
        headers=_plain_headers(top.fields),
        has_attachments=any(_is_attachment(part) for part in (top, *parts)),
        defects=tuple(dict.fromkeys(defects)),
    )


def _plain_headers(fields: list[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    headers: dict[str, list[str]] = {}
    for name, value in fields:
        headers.setdefault(name.lower(), []).append(" ".join(value.split()))
    return {k: tuple(v) for k, v in headers.items()}


def _parts(top: _Part) -> list[_Part]:
    """The single parts of a multipart letter as the parser cuts them (none for a one-part letter).

    Shapes whose parsing records a defect on the letter (no boundary, no first or closing boundary, a
    transfer encoding on the multipart) or nests messages are not plain."""
    maintype = top.content_type.partition("/")[0]
    if maintype == "message":
        raise _NotPlain
    if maintype != "multipart":
        return []
    encoding = top.first("content-transfer-encoding")
    if top.content_type not in _MULTIPART or (encoding is not None and encoding.lower() not in _PLAIN_CTE):
        raise _NotPlain
    boundary = unquote(top.params.get("boundary", "")).rstrip()
    body = top.body
    if not boundary or body.count(b"\r") != body.count(b"\r\n"):
        raise _NotPlain
    separator = b"--" + boundary.encode("ascii")
    parts: list[_Part] = []
    start: int | None = None
    at = body.find(separator)
    while at >= 0:
        line = _BOUNDARY_LINE.match(body, at + len(separator)) if at == 0 or body[at - 1] == 0x0A else None
        if line is not None:
            if start is not None:
                parts.append(_subpart(body[start:at]))
            if line.group(1):
                break
            start = line.end() + 1
        at = body.find(separator, at + 1)
    else:
        raise _NotPlain  # no closing boundary
    if not parts:
        raise _NotPlain
    return parts


def _subpart(segment: bytes) -> _Part:
    block = plain_header_block(segment)
    if block is None:
        raise _NotPlain
    body = segment[block[1] :]
    # The line end before a boundary belongs to the boundary (a segment always ends with one).
    part = _part(segment, block[0], body[: -2 if body.endswith(b"\r\n") else -1] if body else body)
    if part.content_type.partition("/")[0] in ("multipart", "message"):
        raise _NotPlain
    return part


def _plain_body(top: _Part, parts: list[_Part], subtype: str, defects: list[str]) -> str | None:
    """`_body` on the parts: the first text/`subtype` part in the order `_find_body` walks them."""
    found = _find(top, parts, f"text/{subtype}")
    if found is None:
        return None
    text, as_named = decode_text(_payload(found), _charset(found))
    if not as_named:
        defects.append("UndecodableBody")
    return text


def _find(top: _Part, parts: list[_Part], wanted: str) -> _Part | None:
    """`_find_body` on a plain letter: one part, or the single parts of a multipart/alternative or mixed
    in order; attachments are skipped."""
    if _attached(top):
        return None
    if not top.content_type.startswith("multipart/"):
        return top if top.content_type == wanted else None
    return next((part for part in parts if part.content_type == wanted and not _attached(part)), None)


def _payload(part: _Part) -> bytes:
    """`get_payload(decode=True)` of a single part."""
    cte = (part.first("content-transfer-encoding") or "").lower()
    if cte == "quoted-printable":
        return quopri.decodestring(part.body)
    if cte == "base64" or cte in _UU:
        message = Message()
        message["Content-Transfer-Encoding"] = cte
        message.set_payload(part.body.decode("ascii", "surrogateescape"))
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload
    return part.body


def _charset(part: _Part) -> str | None:
    """`get_content_charset()`."""
    charset = part.params.get("charset")
    return None if charset is None else charset.lower()


def _attached(part: _Part) -> bool:
    """`_is_attached`: the first Content-Disposition's value before any parameter, case aside."""
    disposition = part.first("content-disposition")
    return disposition is not None and disposition.partition(";")[0].strip().lower() == "attachment"


def _is_attachment(part: _Part) -> bool:
    """`_has_attachments`' test of one part."""
    if part.first("content-disposition") is not None:
        return _attached(part)
    if part.content_type.startswith("multipart/") or part.first("content-id") is not None:
        return False
    name = part.params.get("name")
    return name is not None and bool(collapse_rfc2231_value(name).strip())
