"""Pure: what rule conditions see of a letter, each field's texts made once per letter; no I/O.

A field is a tuple of texts: the subject or body when not blank; the sender's display name and address;
every name and address of a recipient list; the values of a header, RFC 2047-decoded, when not blank.
A condition holds on a field when any one of its texts satisfies it, and an empty tuple is an empty field.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import AddressHeader

from matcher.letter import ParsedLetter
from runtime.mail import POLICY
from runtime.text import unmangle
from schemas.config import ConditionField, HeaderField
from schemas.events import Address, LetterReceived

__all__ = ["FieldKey", "LetterView", "fold", "normal", "view_of"]

FieldKey = ConditionField | HeaderField

_HEADER = POLICY.header_factory


@dataclass(frozen=True, kw_only=True)
class LetterView:
    """The fields a condition can test. Texts, folded texts and UTF-8 bytes (for regular expressions) are
    made the first time a condition asks for them and kept for the letter's other conditions."""

    received: datetime
    """When the mailbox's server received the letter; one without a UTC offset is taken as UTC."""
    subject: str = ""
    body: str = ""
    sender: Address | None = None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Raw header values by lower-case name, as `ParsedLetter.headers` has them."""
    has_attachments: bool = False
    _texts: dict[FieldKey, tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _folded: dict[FieldKey, tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _encoded: dict[FieldKey, tuple[bytes, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.received.tzinfo is None:
            object.__setattr__(self, "received", self.received.replace(tzinfo=UTC))

    def texts(self, key: FieldKey) -> tuple[str, ...]:
        """The field's texts as the letter has them, in Unicode's composed form (`normal`)."""
        try:
            return self._texts[key]
        except KeyError:
            made = self._texts[key] = tuple(normal(text) for text in self._make_texts(key))
            return made

    def folded(self, key: FieldKey) -> tuple[str, ...]:
        """The field's texts after Unicode case folding (`fold`)."""
        try:
            return self._folded[key]
        except KeyError:
            made = self._folded[key] = tuple(fold(text) for text in self.texts(key))
            return made

    def encoded(self, key: FieldKey) -> tuple[bytes, ...]:
        """The field's texts in UTF-8, as RE2 reads them."""
        try:
            return self._encoded[key]
        except KeyError:
            made = self._encoded[key] = tuple(t.encode("utf-8", "surrogatepass") for t in self.texts(key))
            return made

    def _make_texts(self, key: FieldKey) -> tuple[str, ...]:
        if isinstance(key, HeaderField):
            decoded = (_decoded(raw) for raw in self.headers.get(key.name, ()))
            return tuple(text for text in decoded if text)
        if key is ConditionField.SUBJECT:
            return (self.subject,) if self.subject.strip() else ()
        if key is ConditionField.BODY:
            return (self.body,) if self.body.strip() else ()
        if key is ConditionField.FROM:
            return _address_texts((self.sender,) if self.sender else ())
        lists = {
            ConditionField.TO: self.to,
            ConditionField.CC: self.cc,
            ConditionField.BCC: self.bcc,
            ConditionField.REPLY_TO: self.reply_to,
        }
        return _address_texts(lists.get(key, ()))


def view_of(letter: LetterReceived, parsed: ParsedLetter, sender: Address) -> LetterView:
    """What conditions see of a received letter (its headers parsed by ingest, its body by the matcher)."""
    head = letter.headers
    return LetterView(
        received=letter.occurred_at,
        subject=head.subject,
        body=parsed.text_body,
        sender=sender,
        to=head.to,
        cc=head.cc,
        bcc=_addresses(parsed.headers.get("bcc", ())),
        reply_to=head.reply_to,
        headers=parsed.headers,
        has_attachments=parsed.has_attachments,
    )


def _address_texts(addresses: tuple[Address, ...]) -> tuple[str, ...]:
    texts: list[str] = []
    for address in addresses:
        if address.name:
            texts.append(address.name)
        texts.append(address.address)
    return tuple(texts)


def _decoded(raw: str) -> str:
    """A raw header value read as text: RFC 2047 encoded words decoded, runs of white space made one."""
    if "=?" in raw:
        try:
            # As unstructured text whatever the header's name: conditions compare what a reader sees.
            raw = str(_HEADER("x-mailroom-text", raw))
        except Exception:  # a value the header registry cannot parse: compare what the letter says
            pass
    return " ".join(unmangle(raw).split())


def _addresses(values: tuple[str, ...]) -> tuple[Address, ...]:
    """The addresses of raw address-header values (`Bcc` is not among the headers ingest parses)."""
    found: list[Address] = []
    for raw in values:
        try:
            header = _HEADER("bcc", raw)
        except Exception:  # unparseable: the letter's defects already say so; no address to test
            continue
        if not isinstance(header, AddressHeader):
            continue
        found.extend(
            Address(name=unmangle(a.display_name), address=unmangle(a.addr_spec))
            for a in header.addresses
            if a.addr_spec
        )
    return tuple(found)


def normal(text: str) -> str:
    """`text` in Unicode's composed form (NFC): `e` + a combining acute is `é`, as a reader sees it."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """`text` case-folded for comparison: canonical caseless matching (NFD, `str.casefold`, NFC), and
    the dotted capital I (Turkish `İ`) folded to a plain `i` as its lower case is written elsewhere."""
    if text.isascii():
        return text.casefold()
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())
    return folded.replace("i\u0307", "i")
