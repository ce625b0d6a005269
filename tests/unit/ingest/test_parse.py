"""Header parsing: golden letters give the expected fields; malformed mail never raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ingest.parse import (
    SYNTHETIC_DOMAIN,
    letter_event,
    normalize_message_id,
    parse_headers,
    synthetic_message_id,
)
from schemas.events import Address, LetterReceived, parse_event

LETTERS = Path(__file__).parent / "letters"
AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _golden(name: str) -> bytes:
    return (LETTERS / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "rfc2047.eml",
            {
                "message_id": "rfc2047.1@kunde.example",
                "subject": "Grüße aus Köln",
                "from_": Address(name="Jürgen Müller", address="juergen@kunde.example"),
                "to": (
                    Address(name="Acme Störungsstelle", address="support@acme.example"),
                    Address(name="Lee, Ann", address="ann@acme.example"),
                ),
                "cc": (Address(name="Élodíe", address="elodie@kunde.example"),),
                "date": datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2))),
            },
        ),
        (
            "reply.eml",
            {
                "message_id": "reply.3@customer.example",
                "in_reply_to": ("reply-abc@acme.example",),
                "references": ("root.1@customer.example", "reply-abc@acme.example"),
                "subject": "Re: Order 123",
                "reply_to": (
                    Address(name="Orders", address="orders@customer.example"),
                    Address(address="backup@customer.example"),
                ),
                "date": datetime(2024, 5, 7, 10, 0, tzinfo=UTC),
            },
        ),
        (
            "no-message-id.eml",
            {
                "message_id_synthetic": True,
                "subject": "No id here",
                "from_": Address(name="Bob", address="bob@customer.example"),
                "date": None,
            },
        ),
        (
            "odd-headers.eml",
            {
                "message_id": "bare-id@customer.example",
                "in_reply_to": ("bare-parent@customer.example",),
                "subject": "Folded over two lines",
                "from_": Address(address="robot@customer.example"),
                "to": (),
                "date": None,
            },
        ),
    ],
)
def test_golden_letters(name: str, expected: dict[str, Any]) -> None:
    headers, defects = parse_headers(_golden(name))

    assert {key: getattr(headers, key) for key in expected} == expected
    assert defects == ()


@pytest.mark.parametrize(
    ("header", "subject"),
    [
        (b"=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
        (b"=?UTF-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
        (b"=?iso-8859-1?q?Caf=E9?= au lait", "Café au lait"),
        (b"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),
        (b"Re: =?utf-8?q?=C4=B0stanbul?=", "Re: İstanbul"),
        (b"=?utf-8?q?broken", "=?utf-8?q?broken"),
    ],
)
def test_rfc2047_subjects_are_decoded(header: bytes, subject: str) -> None:
    headers, _ = parse_headers(b"Subject: " + header + b"\r\n\r\n")

    assert headers.subject == subject


@pytest.mark.parametrize(
    ("header", "sender"),
    [
        (b"=?utf-8?q?J=C3=BCrgen?= <j@x.example>", Address(name="Jürgen", address="j@x.example")),
        (b"=?utf-8?b?5bGx55Sw?= <y@x.example>", Address(name="山田", address="y@x.example")),
        (b'"Lee, Ann" <ann@x.example>', Address(name="Lee, Ann", address="ann@x.example")),
        (b"ann@x.example (Ann Lee)", Address(address="ann@x.example")),
        (b"ann@x.example", Address(address="ann@x.example")),
    ],
)
def test_sender_display_names_are_decoded(header: bytes, sender: Address) -> None:
    headers, _ = parse_headers(b"From: " + header + b"\r\n\r\n")

    assert headers.from_ is not None
    assert headers.from_.address == sender.address
    if sender.name:
        assert headers.from_.name == sender.name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@b>", "a@b"),
        ("  <a@b>  ", "a@b"),
        ("a@b", "a@b"),
        ("(comment) <a@b>", "a@b"),
        ("<a@b> <c@d>", "a@b"),
    ],
)
def test_normalize_message_id(value: str, expected: str) -> None:
    assert normalize_message_id(value) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@x.example\r\n\r\nno id",
        b"From: a@x.example\r\nMessage-ID:\r\n\r\nempty id",
        b"From: a@x.example\r\nMessage-ID: <>\r\n\r\nempty brackets",
    ],
    ids=["missing", "empty", "empty brackets"],
)
def test_a_letter_without_message_id_gets_a_stable_synthetic_one(raw: bytes) -> None:
    headers, _ = parse_headers(raw)
    again, _ = parse_headers(raw)
    other, _ = parse_headers(raw + b" changed")

    assert headers.message_id_synthetic is True
    assert headers.message_id.endswith(f"@{SYNTHETIC_DOMAIN}")
    assert headers.message_id == synthetic_message_id(raw) == again.message_id
    assert other.message_id != headers.message_id


@pytest.mark.parametrize(
    "value",
    [b"<abc def@host.example>", b'<"quoted local"@host.example>', b"<a b c>"],
    ids=["space", "quoted local part", "words"],
)
def test_message_ids_never_keep_angle_brackets(value: bytes) -> None:
    """LetterHeaders.message_id: "Without angle brackets"; a bad id must not collapse into another's."""
    headers, _ = parse_headers(b"Message-ID: " + value + b"\r\n\r\n")
    other, _ = parse_headers(b"Message-ID: " + value.replace(b" ", b" x") + b"\r\n\r\n")

    assert "<" not in headers.message_id and ">" not in headers.message_id
    assert headers.message_id != other.message_id


@pytest.mark.parametrize(
    ("raw", "in_reply_to", "references"),
    [
        (b"In-Reply-To: <p@x>\r\nReferences: <r1@x> <r2@x>\r\n\r\n", ("p@x",), ("r1@x", "r2@x")),
        (b"References: <r1@x>\r\n <r2@x>\r\n\t<r1@x>\r\n\r\n", (), ("r1@x", "r2@x")),
        (b"In-Reply-To: <p@x> (sent by Ann) <p@x>\r\n\r\n", ("p@x",), ()),
        (b"In-Reply-To: p@x\r\nReferences: r1@x r2@x\r\n\r\n", ("p@x",), ("r1@x", "r2@x")),
        (b"In-Reply-To:\r\nReferences:   \r\n\r\n", (), ()),
    ],
    ids=["plain", "folded and repeated", "comment", "bare ids", "empty"],
)
def test_thread_headers(raw: bytes, in_reply_to: tuple[str, ...], references: tuple[str, ...]) -> None:
    headers, _ = parse_headers(raw)

    assert headers.in_reply_to == in_reply_to
    assert headers.references == references


@pytest.mark.parametrize(
    ("raw", "sender"),
    [
        (b"From: a@x.example\r\nSender: s@x.example\r\n\r\n", "a@x.example"),
        (b"Sender: s@x.example\r\n\r\n", "s@x.example"),
        (b"From: not an address\r\nSender: s@x.example\r\n\r\n", "s@x.example"),
        (b"From: Nobody <>\r\n\r\n", None),
        (b"From: a@x.example, b@x.example\r\n\r\n", "a@x.example"),
        (b"\r\n", None),
    ],
    ids=["from", "sender only", "from without address", "empty address", "two senders", "none"],
)
def test_the_sender_is_from_else_sender(raw: bytes, sender: str | None) -> None:
    headers, _ = parse_headers(raw)

    assert (headers.from_.address if headers.from_ else None) == sender


def test_recipients_are_lists_without_groups_or_bad_entries() -> None:
    raw = (
        b"To: a@x.example, B <b@x.example>, undisclosed-recipients:;, junk\r\nCc: Team: c@x.example;\r\n\r\n"
    )

    headers, _ = parse_headers(raw)

    assert headers.to == (Address(address="a@x.example"), Address(name="B", address="b@x.example"))
    assert headers.cc == (Address(address="c@x.example"),)


@pytest.mark.parametrize(
    ("value", "date"),
    [
        (b"Mon, 06 May 2024 07:08:09 +0000", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        (b"Mon, 06 May 2024 07:08:09 -0000", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        (b"6 May 2024 09:08:09 +0200", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
        (b"yesterday", None),
        (b"Mon, 99 Foo 2024 99:99:99 +9999", None),
        (b"", None),
    ],
)
def test_dates_are_aware_or_none(value: bytes, date: datetime | None) -> None:
    headers, _ = parse_headers(b"Date: " + value + b"\r\n\r\n")

    assert headers.date == date
    assert headers.date is None or headers.date.tzinfo is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n",
        b"no headers at all, just text\r\n",
        bytes(range(256)) * 8,
        b"\x00\x00\x00\x00",
        b"From a@x Mon May  6 07:08:09 2024\r\nSubject: mbox line\r\n\r\nx",
        b"Subject caf\xc3\xa9 without colon\r\n\r\n",
        b"Subject: raw caf\xc3\xa9 and latin \xe9\r\nFrom: J\xfcrgen <j@x.example>\r\n\r\n",
        b"Subject: =?x-no-such-charset?q?abc?=\r\nFrom: =?x-unknown?b?!!!?= <a@x.example>\r\n\r\n",
        b'From: <<<@@@>>>\r\nTo: ,,,;;;\r\nCc: "unterminated <a@x\r\nReply-To: @\r\n\r\n',
        b"Message-ID: <<<>>>\r\nIn-Reply-To: <\r\nReferences: >\r\n\r\n",
        b"Date: Mon, 06 May 2024 25:61:61 +9999\r\n\r\n",
        b"Subject: " + b"x" * 100_000 + b"\r\n\r\n",
        b"X-Many: 1\r\n" * 5_000 + b"\r\n",
        b"Subject: nul\x00inside\r\nFrom: a\x00@x.example\r\n\r\n",
        b"Content-Type: multipart/mixed\r\n\r\n--broken",
    ],
    ids=[
        "empty",
        "blank line",
        "no headers",
        "binary junk",
        "nuls",
        "mbox from line",
        "header without colon",
        "8-bit headers",
        "unknown charset",
        "broken addresses",
        "broken ids",
        "impossible date",
        "huge header",
        "many headers",
        "nul in headers",
        "broken multipart",
    ],
)
def test_malformed_letters_never_raise_and_still_make_an_event(raw: bytes) -> None:
    headers, defects = parse_headers(raw)
    event = letter_event("support", "acme", "INBOX", 7, 42, AT, raw)

    assert headers.message_id
    assert all(isinstance(d, str) for d in defects)
    assert parse_event(LetterReceived, event.to_bytes()).raw == raw


def test_an_8bit_subject_is_kept_readable() -> None:
    headers, _ = parse_headers(b"Subject: caf\xc3\xa9\r\n\r\n")

    assert headers.subject.startswith("caf")
    assert "\udcc3" not in headers.subject


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (b"From: J\xc3\xbcrgen M\xc3\xbcller <j@x.example>", "Jürgen Müller"),
        (b"To: J\xc3\xbcrgen M\xc3\xbcller <j@x.example>", "Jürgen Müller"),
        (b"From: J\xfcrgen <j@x.example>", None),
    ],
    ids=["utf-8 from (RFC 6532)", "utf-8 to (RFC 6532)", "latin-1 from"],
)
def test_8bit_display_names_are_readable_and_the_event_serializes(header: bytes, name: str | None) -> None:
    raw = header + b"\r\nSubject: hi\r\n\r\nbody"
    headers, _ = parse_headers(raw)
    address = headers.from_ or headers.to[0]

    assert address.address == "j@x.example"
    assert not any("\udc80" <= c <= "\udcff" for c in address.name)
    if name is not None:
        assert address.name == name
    assert letter_event("support", "acme", "INBOX", 7, 42, AT, raw).to_bytes()


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (b"Hello\r\n  world", "Hello world"),
        (b"  spaced   out  ", "spaced out"),
        (b"tab\tseparated", "tab separated"),
    ],
)
def test_subjects_are_one_line_with_single_spaces(subject: bytes, expected: str) -> None:
    headers, _ = parse_headers(b"Subject: " + subject + b"\r\n\r\n")

    assert headers.subject == expected


def test_defects_are_recorded_once_each() -> None:
    _, defects = parse_headers(b"no header line\r\nanother\r\n")

    assert defects == ("MissingHeaderBodySeparatorDefect",)


def test_letter_event_carries_the_letter() -> None:
    raw = _golden("rfc2047.eml")

    event = letter_event("support", "acme", "INBOX", 7, 42, AT, raw)

    assert (event.mailbox_id, event.organization, event.folder, event.uidvalidity, event.uid) == (
        "support",
        "acme",
        "INBOX",
        7,
        42,
    )
    assert event.occurred_at == AT
    assert event.size == len(raw)
    assert event.raw == raw
    assert event.headers == parse_headers(raw)[0]


@pytest.mark.parametrize(
    "changes",
    [
        {"raw": b"Subject: other bytes\r\n\r\n"},
        {"organization": "other-org"},
        {"received_at": AT + timedelta(days=1)},
    ],
    ids=["bytes", "organization", "time"],
)
def test_letter_event_id_ignores_everything_but_where_the_letter_lives(changes: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "mailbox_id": "support",
        "organization": "acme",
        "folder": "INBOX",
        "uidvalidity": 7,
        "uid": 42,
        "received_at": AT,
        "raw": _golden("reply.eml"),
    }

    assert letter_event(**{**base, **changes}).event_id == letter_event(**base).event_id


@pytest.mark.parametrize(
    "changes",
    [{"mailbox_id": "sales"}, {"folder": "Archive"}, {"uidvalidity": 8}, {"uid": 43}],
    ids=["mailbox", "folder", "uidvalidity", "uid"],
)
def test_letter_event_id_changes_with_where_the_letter_lives(changes: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "mailbox_id": "support",
        "organization": "acme",
        "folder": "INBOX",
        "uidvalidity": 7,
        "uid": 42,
        "received_at": AT,
        "raw": _golden("reply.eml"),
    }

    assert letter_event(**{**base, **changes}).event_id != letter_event(**base).event_id


@pytest.mark.parametrize(
    ("header", "sender"),
    [
        # A line break inside the encoded display name: the address is still good.
        (
            b"From: =?utf-8?B?RXZlClNtaXRo?= <eve@evil.example>",
            Address(name="Eve Smith", address="eve@evil.example"),
        ),
        (
            b"From: =?utf-8?Q?Ann=0D=0ALee?= <ann@customer.example>",
            Address(name="Ann Lee", address="ann@customer.example"),
        ),
    ],
)
def test_a_display_name_the_header_registry_refuses_still_gives_the_sender(
    header: bytes, sender: Address
) -> None:
    headers, _ = parse_headers(header + b"\r\nSubject: x\r\n\r\nbody")

    assert headers.from_ == sender


FORWARDED = (
    b"---------- Forwarded message ----------\r\nsee below\r\n\r\n"
    b"From: Ann Lee <ann@customer.example>\r\nSubject: Printer broken\r\n"
    b"Message-ID: <fw@customer.example>\r\n"
    b"\r\nThe printer on floor 2 is broken.\r\n"
)


@pytest.mark.parametrize(
    ("raw", "sender", "subject"),
    [
        (FORWARDED, "ann@customer.example", "Printer broken"),
        (
            b"From: junk\r\nFrom: Ann <ann@customer.example>\r\nSubject: Two\r\n\r\nbody",
            "ann@customer.example",
            "Two",
        ),
        (
            b"From: ann@customer.example\r\nX-J\x00unk: a\r\nSubject: After nul\r\n\r\nbody",
            "ann@customer.example",
            "After nul",
        ),
        (
            b"From: ann@customer.example\r\n\x00X-Junk: a\r\nSubject: After nul\r\n\r\nbody",
            "ann@customer.example",
            "After nul",
        ),
    ],
    ids=["text pasted above the headers", "junk first From", "NUL inside a header", "NUL starting a header"],
)
def test_letters_of_odd_shape_still_give_sender_and_subject(raw: bytes, sender: str, subject: str) -> None:
    headers, _ = parse_headers(raw)

    assert headers.from_ is not None and headers.from_.address == sender
    assert headers.subject == subject


def test_raw_8bit_subjects_and_names_are_read_in_the_letters_charset() -> None:
    raw = (
        b"From: " + "王小明".encode("gbk") + b" <wang@customer.example>\r\n"
        b"Subject: " + "你好\uff0c关于订单的问题".encode("gbk") + b"\r\n"
        b"Content-Type: text/plain; charset=GB2312\r\n\r\nbody"
    )

    headers, _ = parse_headers(raw)

    assert headers.subject == "你好\uff0c关于订单的问题"
    assert headers.from_ == Address(name="王小明", address="wang@customer.example")
