"""Pure: parses a letter's header block into the fields later stages need; never raises on bad mail.

Only the headers are parsed here (cheap at any letter size); the matcher parses the body once. A plain
header block (printable ASCII, simple address lists, no encoded words) is read directly, without the
email package's parser and header registry, which cost most of ingest's time; anything else is read by
`parse_headers_reference`, and tests hold the two to the same results.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime

from runtime.charsets import charset_hint
from runtime.mail import POLICY, plain_header_block, repaired
from runtime.text import has_raw_bytes, unmangle
from schemas.events import Address, LetterHeaders, LetterReceived
from schemas.ids import letter_id

__all__ = [
    "SYNTHETIC_DOMAIN",
    "letter_event",
    "normalize_message_id",
    "parse_headers",
    "parse_headers_reference",
    "synthetic_message_id",
]

SYNTHETIC_DOMAIN = "mailroom.invalid"
_ID = re.compile(r"<([^<>]*)>")
_PARSER = BytesHeaderParser(policy=POLICY)


def normalize_message_id(value: str) -> str:
    """`<abc@host>` -> `abc@host`; white space inside is folded to one space (an id that has it is
    broken, but must stay distinct from others); an id without brackets is kept as it is, trimmed."""
    ids = _ids(value)
    return ids[0] if ids else ""


def synthetic_message_id(raw: bytes) -> str:
    """A stable id for a letter that has none: the same bytes always give the same id."""
    return f"{hashlib.sha256(raw).hexdigest()[:32]}@{SYNTHETIC_DOMAIN}"


def parse_headers(raw: bytes) -> tuple[LetterHeaders, tuple[str, ...]]:
    """The letter's header fields and the defects found on the way (recorded, never raised)."""
    fast = _parse_plain(raw)
    return fast if fast is not None else parse_headers_reference(raw)


def parse_headers_reference(raw: bytes) -> tuple[LetterHeaders, tuple[str, ...]]:
    """`parse_headers` by the email package alone: what the fast path must equal, read for every letter
    whose header block is not plain."""
    msg = _PARSER.parsebytes(repaired(raw))
    assert isinstance(msg, EmailMessage)
    defects = [type(d).__name__ for d in msg.defects]

    message_id = normalize_message_id(_raw(msg, "Message-ID"))
    synthetic = not message_id
    if synthetic:
        message_id = synthetic_message_id(raw)
    hint = charset_hint(raw)  # raw 8-bit header text is most likely in the charset the letter names
    senders = _addresses(msg, "From", defects, hint) or _addresses(msg, "Sender", defects, hint)
    headers = LetterHeaders(
        message_id=message_id,
        message_id_synthetic=synthetic,
        in_reply_to=tuple(_ids(_raw(msg, "In-Reply-To"))),
        references=tuple(_ids(_raw(msg, "References"))),
        subject=" ".join(_subject(msg, defects, hint).split()),
        from_=senders[0] if senders else None,
        reply_to=tuple(_addresses(msg, "Reply-To", defects, hint)),
        to=tuple(_addresses(msg, "To", defects, hint)),
        cc=tuple(_addresses(msg, "Cc", defects, hint)),
        date=_date(msg, defects),
    )
    return headers, tuple(dict.fromkeys(defects))


def _raw(msg: EmailMessage, name: str) -> str:
    """A header's value as written (ids are not decoded: the header registry mangles odd ones)."""
    wanted = name.lower()
    value = next((v for k, v in msg.raw_items() if k.lower() == wanted), "")
    return unmangle(str(value))


def _subject(msg: EmailMessage, defects: list[str], hint: str | None) -> str:
    """The subject, RFC 2047-decoded; one written in raw 8-bit bytes read in the letter's charset (the
    header registry would have replaced those bytes already)."""
    raw = next((str(v) for k, v in msg.raw_items() if k.lower() == "subject"), "")
    if has_raw_bytes(raw):
        return unmangle(raw, hint)
    return _text(msg, "Subject", defects)


def _text(msg: EmailMessage, name: str, defects: list[str]) -> str:
    try:
        value = msg.get(name)
    except Exception as exc:  # the header registry raises on some malformed values
        defects.append(f"Invalid{name.replace('-', '')}Header:{type(exc).__name__}")
        return ""
    return "" if value is None else str(value)


def _ids(value: str) -> list[str]:
    found = [" ".join(i.split()) for i in _ID.findall(value)]
    if not found:
        found = value.split()
    return list(dict.fromkeys(i for i in found if i))


def _addresses(msg: EmailMessage, name: str, defects: list[str], hint: str | None) -> list[Address]:
    """The addresses of every `name` header (a letter may carry a junk one before the real one)."""
    found: list[Address] = []
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            found.extend(_registry_addresses(name, str(value), defects, hint))
    return [a for a in found if "@" in a.address]


def _registry_addresses(name: str, value: str, defects: list[str], hint: str | None) -> list[Address]:
    """The addresses of one header value, read by the header registry."""
    found: list[Address] = []
    try:
        header = POLICY.header_fetch_parse(name, unmangle(value, hint))
        if isinstance(header, AddressHeader):
            found.extend(Address(name=a.display_name, address=a.addr_spec) for a in header.addresses)
    except Exception as exc:  # e.g. a display name with a line break in it: read the list plainly
        defects.append(f"Invalid{name.replace('-', '')}Header:{type(exc).__name__}")
        found.extend(_plain_addresses(unmangle(value, hint)))
    return found


def _plain_addresses(value: str) -> list[Address]:
    """The addresses of a header value as the simple parser reads them, display names RFC 2047-decoded
    and made one line."""
    found = []
    for display, address in getaddresses([value]):
        try:
            display = str(make_header(decode_header(display)))
        except Exception:  # an encoded word beyond repair: keep it as written
            pass
        found.append(Address(name=" ".join(unmangle(display).split()), address=unmangle(address)))
    return found


def _date(msg: EmailMessage, defects: list[str]) -> datetime | None:
    try:
        header = msg.get("Date")
        value = getattr(header, "datetime", None)
    except Exception as exc:
        defects.append(f"InvalidDateHeader:{type(exc).__name__}")
        return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_LINE_ENDS = re.compile(r"[\r\n]")
_TOKEN = r"[A-Za-z0-9!#$%&'+.^_`{|}~-]+"
_CONTENT_TYPE = re.compile(
    rf"[ \t]*{_TOKEN}/{_TOKEN}[ \t]*"
    rf"(?:;[ \t]*{_TOKEN}=(?:{_TOKEN}|\"[^\"\\]*\")[ \t]*)*;?[ \t]*"
)
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
_MAILBOX = re.compile(rf"[ \t]*(?:({_ADDR_SPEC})|((?:{_ATOM}[ \t]+)*{_ATOM})?[ \t]*<({_ADDR_SPEC})>)[ \t]*")


def _parse_plain(raw: bytes) -> tuple[LetterHeaders, tuple[str, ...]] | None:
    """`parse_headers` of a letter whose header block is plain ASCII (`plain_header_block`), or None.

    Such a block gives the parser nothing to record (defects are header-level only when parsing headers
    alone), and its raw 8-bit handling (`charset_hint`, `unmangle`) has nothing to act on. The parser
    reads the Content-Type with the header registry when it closes: one that is not simple is left to the
    reference, which then fails or not as it always did."""
    block = plain_header_block(repaired(raw))
    if block is None:
        return None
    fields = block[0]
    content_type = _first(fields, "content-type")
    if content_type is not None and not _CONTENT_TYPE.fullmatch(_LINE_ENDS.sub("", content_type)):
        return None
    defects: list[str] = []
    message_id = normalize_message_id(_first(fields, "message-id") or "")
    synthetic = not message_id
    if synthetic:
        message_id = synthetic_message_id(raw)
    senders = _plain_list(fields, "From", defects) or _plain_list(fields, "Sender", defects)
    subject = _first(fields, "subject")
    headers = LetterHeaders(
        message_id=message_id,
        message_id_synthetic=synthetic,
        in_reply_to=tuple(_ids(_first(fields, "in-reply-to") or "")),
        references=tuple(_ids(_first(fields, "references") or "")),
        subject="" if subject is None else " ".join(_plain_text("Subject", subject, defects).split()),
        from_=senders[0] if senders else None,
        reply_to=tuple(_plain_list(fields, "Reply-To", defects)),
        to=tuple(_plain_list(fields, "To", defects)),
        cc=tuple(_plain_list(fields, "Cc", defects)),
        date=_plain_date(_first(fields, "date"), defects),
    )
    return headers, tuple(dict.fromkeys(defects))


def _first(fields: list[tuple[str, str]], wanted: str) -> str | None:
    return next((v for k, v in fields if k.lower() == wanted), None)


def _plain_text(name: str, value: str, defects: list[str]) -> str:
    """An unstructured header's text, as the header registry gives it: plain ASCII without encoded
    words is its own text, line breaks removed."""
    value = _LINE_ENDS.sub("", value)
    if "=?" not in value:
        return value
    try:
        return str(POLICY.header_fetch_parse(name, value))
    except Exception as exc:
        defects.append(f"Invalid{name.replace('-', '')}Header:{type(exc).__name__}")
        return ""


def _plain_list(fields: list[tuple[str, str]], name: str, defects: list[str]) -> list[Address]:
    """`_addresses` of plain header values: a list of `addr@host` and `Name <addr@host>` (atoms only,
    no comments, quotes, groups or encoded words) read by a pattern, any other by the header registry."""
    found: list[Address] = []
    wanted = name.lower()
    for key, value in fields:
        if key.lower() != wanted:
            continue
        simple = _simple_addresses(_LINE_ENDS.sub("", value))
        if simple is None:
            found.extend(_registry_addresses(name, value, defects, None))
        else:
            found.extend(simple)
    return [a for a in found if "@" in a.address]


def _simple_addresses(value: str) -> list[Address] | None:
    if not value.strip():
        return []
    if "=?" in value:
        return None
    found = []
    for item in value.split(","):
        match = _MAILBOX.fullmatch(item)
        if match is None:
            return None
        bare, display, angled = match.groups()
        if bare is not None:
            found.append(Address(name="", address=bare))
        else:
            found.append(Address(name=" ".join((display or "").split()), address=angled))
    return found


def _plain_date(value: str | None, defects: list[str]) -> datetime | None:
    """`_date` of a plain value, as the header registry's DateHeader reads it."""
    if value is None:
        return None
    value = _LINE_ENDS.sub("", value)
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except ValueError:
        return None
    except Exception as exc:
        defects.append(f"InvalidDateHeader:{type(exc).__name__}")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def letter_event(
    mailbox_id: str,
    organization: str,
    folder: str,
    uidvalidity: int,
    uid: int,
    received_at: datetime,
    raw: bytes,
) -> LetterReceived:
    """The LetterReceived for one IMAP message; its id depends only on where the message lives."""
    headers, defects = parse_headers(raw)
    return LetterReceived(
        event_id=letter_id(mailbox_id, folder, uidvalidity, uid),
        occurred_at=received_at,
        mailbox_id=mailbox_id,
        organization=organization,
        folder=folder,
        uidvalidity=uidvalidity,
        uid=uid,
        size=len(raw),
        headers=headers,
        defects=defects,
        raw=raw,
    )
