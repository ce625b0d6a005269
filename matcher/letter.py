"""Pure: parses a whole letter once into what rules, loop guards and records need; never raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from schemas.text import html_to_text

__all__ = ["ParsedLetter", "parse_letter"]

_PARSER = BytesParser(policy=policy.default)


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
    msg = _PARSER.parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    defects = [type(d).__name__ for d in msg.defects]
    headers: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        headers.setdefault(name.lower(), []).append(_header_text(value))
    plain = _body(msg, "plain", defects)
    html = _body(msg, "html", defects)
    text = plain if plain is not None else html_to_text(html) if html is not None else ""
    attachments = any(True for _ in _attachments(msg, defects))
    return ParsedLetter(
        text_body=text.replace("\r\n", "\n").strip(),
        html_body=html,
        content_type=msg.get_content_type(),
        headers={k: tuple(v) for k, v in headers.items()},
        has_attachments=attachments,
        defects=tuple(dict.fromkeys(defects)),
    )


def _header_text(value: object) -> str:
    try:
        return " ".join(str(value).split())
    except Exception:  # a header the registry cannot decode: keep what the bytes say
        return repr(value)


def _body(msg: EmailMessage, subtype: str, defects: list[str]) -> str | None:
    try:
        part = msg.get_body(preferencelist=(subtype,))
    except Exception as exc:
        defects.append(f"BrokenStructure:{type(exc).__name__}")
        return None
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    try:
        content = part.get_content()
        return content if isinstance(content, str) else None
    except (LookupError, UnicodeError, ValueError, AssertionError):
        # Unknown or lying charset: keep what can be read rather than nothing.
        defects.append("UndecodableBody")
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None


def _attachments(msg: EmailMessage, defects: list[str]) -> list[object]:
    try:
        return list(msg.iter_attachments())
    except Exception as exc:
        defects.append(f"BrokenStructure:{type(exc).__name__}")
        return []
