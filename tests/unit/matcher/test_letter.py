"""Whole-letter parsing: the text a rule sees, attachments, headers by name; never raises."""

from __future__ import annotations

import pytest

from matcher.letter import parse_letter
from tests.unit.builders import letter_bytes

ATTACHMENT = (
    b"From: a@x.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the invoice.\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    ("raw", "text", "content_type", "attachments"),
    [
        (letter_bytes(body="Hello\nworld\n"), "Hello\nworld", "text/plain", False),
        (letter_bytes(body="Grüße aus Köln"), "Grüße aus Köln", "text/plain", False),
        (
            letter_bytes(body="plain part", html="<p>html part</p>"),
            "plain part",
            "multipart/alternative",
            False,
        ),
        (
            b"From: a@x.example\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            b"<html><head><style>p{}</style></head><body><p>Hello &amp; <b>you</b></p>"
            b"<script>x()</script><p>Bye</p></body></html>",
            "Hello & you\n\nBye",
            "text/html",
            False,
        ),
        (ATTACHMENT, "See the invoice.", "multipart/mixed", True),
        (
            b"Content-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"Gr=FC=DFe\r\n",
            "Grüße",
            "text/plain",
            False,
        ),
        (
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            b"R3LDvMOfZQ==\r\n",
            "Grüße",
            "text/plain",
            False,
        ),
        (
            b"Subject: windows line ends\r\n\r\nline one\r\nline two\r\n",
            "line one\nline two",
            "text/plain",
            False,
        ),
    ],
    ids=[
        "plain",
        "utf-8",
        "alternative prefers plain",
        "html only",
        "attachment",
        "qp latin-1",
        "base64",
        "crlf",
    ],
)
def test_text_body_content_type_and_attachments(
    raw: bytes, text: str, content_type: str, attachments: bool
) -> None:
    letter = parse_letter(raw)

    assert letter.text_body == text
    assert letter.content_type == content_type
    assert letter.has_attachments is attachments


def test_html_only_keeps_the_html_too() -> None:
    raw = b"Content-Type: text/html\r\n\r\n<p>Hi</p>"

    letter = parse_letter(raw)

    assert letter.text_body == "Hi"
    assert letter.html_body is not None and "<p>Hi</p>" in letter.html_body


def test_plain_only_has_no_html() -> None:
    assert parse_letter(letter_bytes()).html_body is None


def test_headers_are_found_by_lower_case_name_with_every_value_in_order() -> None:
    raw = (
        b"Received: from a\r\nReceived: from b\r\n  folded\r\nX-Loop: Support@Acme.example\r\n"
        b"Auto-Submitted: auto-replied\r\n\r\nbody"
    )

    letter = parse_letter(raw)

    assert letter.headers["received"] == ("from a", "from b folded")
    assert letter.header("RECEIVED") == "from a"
    assert letter.header("x-loop") == "Support@Acme.example"
    assert letter.header("Auto-Submitted") == "auto-replied"
    assert letter.header("precedence") is None


@pytest.mark.parametrize(
    ("raw", "defect"),
    [
        (b"", None),
        (b"\r\n", None),
        (b"no headers, just text\r\n", "MissingHeaderBodySeparatorDefect"),
        (bytes(range(256)) * 8, "MissingHeaderBodySeparatorDefect"),
        (b"\x00\xff\xfe\x80" * 100, None),
        (
            b"Content-Type: multipart/mixed\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n",
            "NoBoundaryInMultipartDefect",
        ),
        (
            b"Content-Type: multipart/mixed; boundary=zzz\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n",
            "StartBoundaryNotFoundDefect",
        ),
        (
            b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nBody",
            "CloseBoundaryNotFoundDefect",
        ),
        (b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nHall\xf6chen\r\n", "UndecodableBody"),
        (b"Content-Type: text/plain; charset=rot13\r\n\r\nHallo\r\n", "UndecodableBody"),
        (b"Content-Type: text/html; charset=x-no-such-charset\r\n\r\n<p>Hall\xf6chen</p>", "UndecodableBody"),
        (b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64===\r\n", None),
        (b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-unknown\r\n\r\nbody\r\n", None),
        (b"Content-Type: message/rfc822\r\n\r\nFrom: b@y\r\n\r\ninner\r\n", None),
        (b"Content-Type: ///;;;===\r\n\r\nbody", None),
        (b"Subject: caf\xc3\xa9 \xff\r\nX-Junk: \x00\x01\r\n\r\n\xff\xfe body", None),
        (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n" * 2_000 + b"--b--", None),
    ],
    ids=[
        "empty",
        "blank line",
        "no headers",
        "binary junk",
        "high bytes",
        "multipart without boundary",
        "wrong boundary",
        "unterminated multipart",
        "unknown charset",
        "non-text codec",
        "unknown charset in html",
        "broken base64",
        "unknown transfer encoding",
        "attached message",
        "garbage content type",
        "8-bit headers",
        "many empty parts",
    ],
)
def test_malformed_letters_never_raise_and_record_defects(raw: bytes, defect: str | None) -> None:
    letter = parse_letter(raw)

    assert isinstance(letter.text_body, str)
    assert "/" in letter.content_type
    if defect is not None:
        assert defect in letter.defects


def test_an_unknown_charset_keeps_what_can_be_read() -> None:
    letter = parse_letter(b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nHello W\xf6rld\r\n")

    assert letter.text_body.startswith("Hello W")
    assert letter.text_body.endswith("rld")


def test_defects_are_listed_once() -> None:
    letter = parse_letter(b"one\r\ntwo\r\nthree\r\n")

    assert len(letter.defects) == len(set(letter.defects))


def test_raw_8bit_header_values_are_readable_text() -> None:
    raw = b"From: ann@customer.example\r\nAuto-Submitted: auto-replied (Abwesenheit f\xfcr Ann)\r\n\r\nbody"

    letter = parse_letter(raw)

    assert letter.header("auto-submitted") == "auto-replied (Abwesenheit f\u00fcr Ann)"


def test_an_empty_plain_part_gives_way_to_the_html_one() -> None:
    raw = (
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\n \r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>Printer <b>broken</b></p>\r\n--b--\r\n"
    )

    assert parse_letter(raw).text_body == "Printer broken"


@pytest.mark.parametrize(
    ("raw", "attachments"),
    [
        (
            b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n",
            True,
        ),
        (
            b"Content-Type: multipart/related; boundary=r\r\n\r\n"
            b"--r\r\nContent-Type: text/html\r\n\r\n<p>Hi <img src=cid:logo></p>\r\n"
            b"--r\r\nContent-Type: image/png; name=logo.png\r\nContent-ID: <logo>\r\n"
            b"Content-Disposition: inline; filename=logo.png\r\n\r\nPNG\r\n--r--\r\n",
            False,
        ),
        (
            b"Content-Type: multipart/mixed; boundary=m\r\n\r\n"
            b"--m\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            b"--m\r\nContent-Type: application/octet-stream; name=data.bin\r\n\r\nxx\r\n--m--\r\n",
            True,
        ),
    ],
    ids=["single-part attachment", "inline logo in related", "named part without disposition"],
)
def test_attachments_are_what_a_reader_calls_attachments(raw: bytes, attachments: bool) -> None:
    assert parse_letter(raw).has_attachments is attachments


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (
            b"---------- Forwarded message ----------\r\nsee below\r\n\r\n"
            b"From: Ann Lee <ann@customer.example>\r\nSubject: Printer broken\r\n\r\n"
            b"The printer is broken.\r\n",
            "The printer is broken.",
        ),
        (b"Content-Type: multipart/mixed; boundary=zzz\r\n\r\nHello there\r\n", "Hello there"),
        (b"Content-Type: multipart/mixed\r\n\r\nHello there\r\n", "Hello there"),
        (b"From: a@b.example\r\nX-J\x00unk: a\r\nSubject: s\r\n\r\nthe body\r\n", "the body"),
    ],
    ids=["text pasted above the headers", "boundary never used", "no boundary", "NUL in a header"],
)
def test_the_body_of_a_letter_of_odd_shape_is_still_read(raw: bytes, text: str) -> None:
    assert parse_letter(raw).text_body == text


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        # Labelled GB2312, written in GBK (a character GB2312 lacks): very common in Chinese mail.
        (
            b"Content-Type: text/plain; charset=gb2312\r\n\r\n" + "朱镕基总理的讲话".encode("gbk"),
            "朱镕基总理的讲话",
        ),
        # Labelled ISO-8859-1, written in windows-1252 (the euro sign and dashes).
        (
            b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n" + "Preis \u2013 20 €".encode("cp1252"),
            "Preis \u2013 20 €",
        ),
        # No charset at all, 8-bit UTF-8 text.
        (b"Content-Type: text/plain\r\n\r\n" + "Grüße aus Köln".encode(), "Grüße aus Köln"),
    ],
    ids=["gb2312 label, gbk text", "latin-1 label, windows-1252 text", "no label, utf-8"],
)
def test_bodies_in_mislabelled_charsets_are_read_right(raw: bytes, text: str) -> None:
    assert parse_letter(raw).text_body == text


def test_a_raw_8bit_header_is_read_in_the_letters_own_charset() -> None:
    subject = "你好\uff0c关于订单的问题"
    raw = (
        b"From: ann@customer.example\r\nSubject: " + subject.encode("gbk") + b"\r\n"
        b"Content-Type: text/plain; charset=gbk\r\n\r\n" + "请帮忙".encode("gbk")
    )

    letter = parse_letter(raw)

    assert letter.header("subject") == subject
    assert letter.text_body == "请帮忙"
