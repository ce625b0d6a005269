"""Pure: parses a whole letter once into what rules, loop guards and records need; never raises.

The letter's structure is read with the email package's compat32 policy, whose header handling is plain
text: the `policy.default` header registry parses a Content-Type again each time a part is asked for its
type (dozens of times per letter), which made this the matcher's costliest step. Header values are kept
as the letter has them (white space folded); `matcher/view.py` decodes RFC 2047 words where a condition
reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import Compat32

from runtime.charsets import charset_hint, decode_text
from runtime.mail import repaired
from runtime.text import html_to_text, unmangle

__all__ = ["ParsedLetter", "parse_letter"]


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


def _body(msg: EmailMessage, subtype: str, defects: list[str]) -> str | None:
    try:
        part = msg.get_body(preferencelist=(subtype,))
    except Exception as exc:
        defects.append(f"BrokenStructure:{type(exc).__name__}")
        return None
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    return _text(part, defects)


def _text(part: Message, defects: list[str]) -> str | None:
    """A text part's content (transfer encoding undone, charset decoded as `runtime.charsets` reads it)."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    text, as_named = decode_text(payload, part.get_content_charset())
    if not as_named:
        defects.append("UndecodableBody")  # read as well as could be, but not in the charset it names
    return text


def _has_attachments(msg: EmailMessage, defects: list[str]) -> bool:
    """What a reader calls an attachment: a part (or the whole letter) marked `attachment`, or a named
    part marked nothing that is not a resource of the html (an inline image has a Content-ID)."""
    try:
        for part in msg.walk():
            disposition = part.get_content_disposition()
            if disposition == "attachment":
                return True
            if (
                disposition is None
                and not part.is_multipart()
                and part.get_filename()
                and part.get("content-id") is None
            ):
                return True
    except Exception as exc:
        defects.append(f"BrokenStructure:{type(exc).__name__}")
    return False
