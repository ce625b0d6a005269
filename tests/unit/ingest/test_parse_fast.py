"""Header parsing: the direct reading of plain header blocks gives exactly what the email package gives.

`letters()` makes hostile and ordinary letters alike (also used by the matcher's equivalence test): names
and subjects in ASCII, raw 8-bit and encoded words, quoted names, comments, groups, several recipients,
duplicated, folded and malformed fields, single parts and multiparts in several charsets and encodings.
"""

from __future__ import annotations

import base64
import quopri
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.parse import _parse_plain, letter_event, parse_headers, parse_headers_reference
from tests.letters import letter

AT = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

NAMES = [
    "",
    "Ann Lee",
    "Ann   Lee",
    "Ann\tLee",
    "O'Neil",
    "J. Smith",
    '"Lee, Ann"',
    '"Ann \\"the boss\\" Lee"',
    "Ann (boss) Lee",
    "Jürgen Müller",
    "=?utf-8?q?J=C3=BCrgen_M=C3=BCller?=",
    "=?iso-8859-1?q?M=FCller?=",
    "=?utf-8?b?SsO8cmdlbg==?=",
    "=?utf-8?q?broken",
    "x=?y",
    "Support-Team #1",
    "a.b",
]
ADDRESSES = [
    "ann@customer.example",
    "a.b+c@x.example",
    "o'neil@x.example",
    "UPPER@X.EXAMPLE",
    "weird..dots@x.example",
    ".lead@x.example",
    "x@[127.0.0.1]",
    '"q u"@x.example',
    "jürgen@kunde.example",
    "no-at-sign",
    "@nohost",
    "a@b",
]


@st.composite
def mailboxes(draw: st.DrawFn) -> str:
    name, address = draw(st.sampled_from(NAMES)), draw(st.sampled_from(ADDRESSES))
    shape = draw(st.sampled_from(["bare", "angle", "named", "tight", "comment", "broken", "empty"]))
    return {
        "bare": address,
        "angle": f"<{address}>",
        "named": f"{name} <{address}>",
        "tight": f"{name}<{address}>",
        "comment": f"{address} ({name or 'c'})",
        "broken": f"{name} <{address}",
        "empty": "",
    }[shape]


@st.composite
def address_lists(draw: st.DrawFn) -> str:
    items = draw(st.lists(mailboxes(), min_size=1, max_size=4))
    if draw(st.integers(0, 9)) == 0:
        items.append(draw(st.sampled_from(["Team: a@x.example, b@x.example;", "undisclosed-recipients:;"])))
    joined = draw(st.sampled_from([", ", ",", " , ", ",\r\n ", ",\n\t"])).join(items)
    return joined + draw(st.sampled_from(["", "", "", ",", " "]))


SUBJECTS = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    st.sampled_from(
        [
            "Question about order 12",
            "Grüße aus Köln",
            "=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?K=F6ln?=",
            "=?utf-8?b?5pel5pys6Kqe?=",
            "=?bogus?q?x?=",
            "=?utf-8?q?unterminated",
            "Re: [ticket #1] urgent!!",
            "a" * 120,
            "",
            "  spaced   out  ",
        ]
    ),
)
DATES = st.sampled_from(
    [
        format_datetime(AT),
        format_datetime(datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))),
        "Mon, 6 May 2024 07:08:09 -0000",
        "6 May 2024 07:08:09 +0200 (CEST)",
        "Mon, 31 Feb 2024 10:00:00 +0000",
        "Tue, 1 Jan 2024 25:61:00 +9999",
        "yesterday",
        "",
        "Mon, 06 May 24 07:08 GMT",
        "Mon, 6 May 2024",
    ]
)
IDS = st.sampled_from(
    ["<abc@x.example>", "abc@x.example", "<a b@x.example>", "", "<>", "<a@x.example> <b@y.example>", "<x@y"]
)
CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "us-ascii", "bogus-charset", "UTF-8", '"utf-8"']
TEXTS = ["Hello\nworld\n", "Grüße aus Köln", "price: 5 €", "日本語", "", "a line\r\nand more\r\n", "x" * 200]


def _encode(text: str, charset: str) -> bytes:
    codec = charset.strip('"').lower()
    try:
        return text.encode("utf-8" if codec in ("bogus-charset", "us-ascii") else codec)
    except (UnicodeEncodeError, LookupError):
        return text.encode("utf-8")  # mislabelled, as mail programs do


@st.composite
def parts(draw: st.DrawFn, depth: int = 0) -> tuple[list[tuple[str, str]], bytes]:
    """A part's header fields and body bytes."""
    fields: list[tuple[str, str]] = []
    subtype = draw(st.sampled_from(["plain", "html", "pdf", "none", "odd", "multipart", "message"]))
    charset = draw(st.sampled_from(CHARSETS))
    text = draw(st.sampled_from(TEXTS))
    if subtype == "html":
        text = f"<html><body><p>{text}</p><p>two</p></body></html>"
    if subtype == "multipart" and depth == 0:
        return draw(multiparts(depth + 1))
    if subtype in ("plain", "html"):
        fields.append(("Content-Type", f"text/{subtype}; charset={charset}"))
    elif subtype == "pdf":
        fields.append(
            ("Content-Type", draw(st.sampled_from(["application/pdf", 'application/pdf; name="a.pdf"'])))
        )
    elif subtype == "odd":
        fields.append(
            (
                "Content-Type",
                draw(
                    st.sampled_from(
                        [
                            "text/plain (comment)",
                            "TEXT/PLAIN; CHARSET=UTF-8",
                            "text / plain",
                            "text/plain;\r\n\tcharset=utf-8",
                            "text/plain; charset*=utf-8''x",
                            "text/plain; name=note.txt",
                            'text/plain; charset="=?utf-8?q?x?="',
                            "text",
                            "",
                        ]
                    )
                ),
            )
        )
    elif subtype == "message":
        fields.append(("Content-Type", "message/rfc822"))
        return fields, b"From: inner@x.example\r\nSubject: inner\r\n\r\ninner body\r\n"
    body = _encode(text, charset)
    encoding = draw(st.sampled_from(["", "7bit", "8bit", "quoted-printable", "base64", "BASE64", "base64 "]))
    if encoding:
        fields.append(("Content-Transfer-Encoding", encoding))
    if encoding.strip().lower() == "quoted-printable":
        body = quopri.encodestring(body)
    elif encoding.strip().lower() == "base64":
        body = base64.encodebytes(body)
    disposition = draw(
        st.sampled_from(
            [None, None, None, "attachment", 'attachment; filename="a.pdf"', "inline", "Attachment"]
        )
    )
    if disposition:
        fields.append(("Content-Disposition", disposition))
    if draw(st.integers(0, 5)) == 0:
        fields.append(("Content-ID", "<img1@x.example>"))
    return fields, body


@st.composite
def multiparts(draw: st.DrawFn, depth: int = 0) -> tuple[list[tuple[str, str]], bytes]:
    subtype = draw(st.sampled_from(["alternative", "mixed", "mixed", "related", "digest", "ALTERNATIVE"]))
    boundary = draw(st.sampled_from(["b1", "==b==", "----=_Part_0_1.2", "b b", "<b>"]))
    written = draw(st.sampled_from([f'"{boundary}"', boundary]))
    shape = draw(st.sampled_from(["; ", ";\r\n\t", ";\n "]))
    fields = [("Content-Type", f"multipart/{subtype}{shape}boundary={written}")]
    if draw(st.integers(0, 6)) == 0:
        fields = [("Content-Type", f"multipart/{subtype}")]  # no boundary
    if draw(st.integers(0, 8)) == 0:
        fields.append(("Content-Transfer-Encoding", draw(st.sampled_from(["7bit", "base64", ""]))))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    chunks = [draw(st.sampled_from([b"", b"This is a multi-part message." + eol]))]
    for fields_, body in draw(st.lists(parts(depth), min_size=0, max_size=3)):
        chunks.append(b"--" + boundary.encode() + draw(st.sampled_from([b"", b"  ", b"--"])) + eol)
        chunks.append(_head(fields_, eol) + eol + body + draw(st.sampled_from([eol, b""])))
    if draw(st.integers(0, 5)):
        chunks.append(b"--" + boundary.encode() + b"--" + draw(st.sampled_from([eol, b"", b" " + eol])))
        chunks.append(draw(st.sampled_from([b"", b"epilogue" + eol, eol])))
    return fields, b"".join(chunks)


def _head(fields: list[tuple[str, str]], eol: bytes) -> bytes:
    return b"".join(
        name.encode() + b": " + value.encode("utf-8").replace(b"\r\n", eol) + eol for name, value in fields
    )


@st.composite
def letters(draw: st.DrawFn) -> bytes:
    """A letter's bytes; about half of them plain enough for the fast paths."""
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    fields: list[tuple[str, str]] = []
    optional = draw(
        st.sets(st.sampled_from(["Sender", "Reply-To", "Cc", "Bcc", "In-Reply-To", "References"]))
    )
    for name in ["From", "To", "Subject", "Date", "Message-ID", *sorted(optional)]:
        if draw(st.integers(0, 12)) == 0:
            continue  # missing
        if name in ("From", "To", "Sender", "Reply-To", "Cc", "Bcc"):
            value = draw(address_lists())
        elif name == "Subject":
            value = draw(SUBJECTS)
        elif name == "Date":
            value = draw(DATES)
        else:
            value = draw(IDS)
        if draw(st.integers(0, 4)) == 0:
            value = value.replace(" ", "\r\n ", 1)  # folded
        fields.append((draw(st.sampled_from([name, name.lower(), name.upper()])), value))
        if draw(st.integers(0, 10)) == 0:
            fields.append((name, draw(address_lists())))  # duplicated
    fields.append(("MIME-Version", "1.0"))
    if draw(st.booleans()):
        part_fields, body = draw(multiparts())
    else:
        part_fields, body = draw(parts())
    fields[draw(st.integers(0, len(fields))) : 0] = part_fields
    head = _head(fields, eol)
    damage = draw(st.integers(0, 24))
    if damage == 1:
        head = head.replace(b"Subject: ", b"Subject: \xc3\xa4\xe4 ", 1)  # raw 8-bit
    elif damage == 2:
        head = head.replace(b"From: ", b"From: J\xfcrgen ", 1)
    elif damage == 3:
        head = b"From sender@x.example Mon May  6 07:08:09 2024" + eol + head
    elif damage == 4:
        head = b" continuation first" + eol + head
    elif damage == 5:
        head += b"not a header line" + eol
    elif damage == 6:
        head += b": no name" + eol
    elif damage == 7:
        head = head.replace(b"\n", b"\r", 1)  # a bare CR
    elif damage == 8:
        head = head.replace(b"To:", b"To:\x00", 1)
    elif damage == 9:
        head = b"Note above the letter" + eol + head
    elif damage == 10:
        head += b"X-Control: a\x0bb\x1cc" + eol
    separator = eol if damage != 11 else b""
    return head + separator + body


def _outcome(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception as exc:  # the reference fails on some letters: the fast path must fail alike
        return type(exc)


def _event(raw: bytes) -> Any:
    return letter_event("support", "acme", "INBOX", 7, 42, AT, raw)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(letters())
def test_fast_headers_equal_the_reference(raw: bytes) -> None:
    fast = _outcome(_event, raw)
    with mock.patch("ingest.parse.parse_headers", parse_headers_reference):
        reference = _outcome(_event, raw)

    if not isinstance(fast, type) and not isinstance(reference, type):
        reference = reference.model_copy(update={"produced_at": fast.produced_at})  # the clock's, not ours
        assert fast.to_bytes() == reference.to_bytes()
    assert fast == reference


@settings(max_examples=300, deadline=None)
@given(st.lists(mailboxes(), min_size=0, max_size=4).map(", ".join), SUBJECTS, DATES)
def test_fast_fields_equal_the_reference(addresses: str, subject: str, date: str) -> None:
    raw = f"From: {addresses}\r\nTo: {addresses}\r\nSubject: {subject}\r\nDate: {date}\r\n\r\nbody\r\n"
    data = raw.encode("utf-8")

    assert _outcome(parse_headers, data) == _outcome(parse_headers_reference, data)


@pytest.mark.parametrize(
    "raw",
    [
        letter("Customer 1 <customer1@example.com>", "Acme Support <support@acme.example>")[0],
        letter("a@x.example", "b@x.example, Ann Lee <c@x.example>", html="<p>hi</p>")[0],
        b"From: a@x.example\nTo: b@x.example\nSubject: lf only\nDate: Mon, 6 May 2024 07:08:09 +0000\n\nhi\n",
    ],
    ids=["named", "alternative", "lf"],
)
def test_ordinary_letters_take_the_fast_path(raw: bytes) -> None:
    assert _parse_plain(raw) is not None
    assert parse_headers(raw) == parse_headers_reference(raw)
