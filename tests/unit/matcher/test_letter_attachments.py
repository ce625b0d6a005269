"""Bodies and attachments: a part is an attachment when its Content-Disposition says `attachment`
(in any case, parameters aside); `inline` or none is a part a body may be found in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from matcher.letter import ParsedLetter, _parse_plain, parse_letter, parse_letter_reference
from tests.unit.matcher.test_letter import ATTACHMENT

PARSERS = pytest.mark.parametrize("parse", [parse_letter, parse_letter_reference], ids=["fast", "reference"])
Parse = Callable[[bytes], ParsedLetter]

PDF = (
    b"Content-Type: application/pdf; name=a.pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
)
HTML = b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Printer <b>broken</b></p>\r\n"


def _mixed(*parts: bytes) -> bytes:
    head = (
        b"From: ann@customer.example\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=m\r\n\r\n"
    )
    return head + b"".join(b"--m\r\n" + part for part in parts) + b"--m--\r\n"


PDF_THEN_HTML = _mixed(PDF, HTML)
INLINE_TEXT = _mixed(
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline\r\n\r\n"
    b"My printer is broken.\r\n",
    PDF,
)
ATTACHED_TEXT_BESIDE_HTML = _mixed(
    b"Content-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n"
    b"private notes\r\n",
    HTML,
)
HTML_BESIDE_ATTACHED_TEXT = _mixed(
    HTML,
    b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n"
    b"private notes\r\n",
)
UPPERCASE_ATTACHMENT = _mixed(
    b"Content-Type: text/plain\r\nContent-Disposition: ATTACHMENT; FILENAME=notes.txt\r\n\r\n"
    b"private notes\r\n",
    HTML,
)


def _no_broken_structure(letter: ParsedLetter) -> bool:
    return not any(defect.startswith("BrokenStructure") for defect in letter.defects)


@PARSERS
def test_plain_text_beside_an_attachment_is_the_body_and_nothing_is_broken(parse: Parse) -> None:
    letter = parse(ATTACHMENT)

    assert letter.text_body == "See the invoice."
    assert letter.has_attachments is True
    assert _no_broken_structure(letter), letter.defects


@PARSERS
def test_html_after_an_attachment_is_found_and_gives_the_text(parse: Parse) -> None:
    letter = parse(PDF_THEN_HTML)

    assert letter.html_body is not None and "<p>Printer <b>broken</b></p>" in letter.html_body
    assert letter.text_body == "Printer broken"
    assert letter.has_attachments is True
    assert _no_broken_structure(letter), letter.defects


@PARSERS
def test_a_text_part_marked_inline_is_the_body(parse: Parse) -> None:
    letter = parse(INLINE_TEXT)

    assert letter.text_body == "My printer is broken."
    assert letter.has_attachments is True
    assert _no_broken_structure(letter), letter.defects


@PARSERS
def test_a_single_part_letter_marked_inline_is_read(parse: Parse) -> None:
    raw = b"From: a@x.example\r\nContent-Type: text/plain\r\nContent-Disposition: inline\r\n\r\nHello\r\n"

    letter = parse(raw)

    assert letter.text_body == "Hello"
    assert letter.has_attachments is False
    assert _no_broken_structure(letter), letter.defects


@PARSERS
@pytest.mark.parametrize(
    "raw",
    [ATTACHED_TEXT_BESIDE_HTML, HTML_BESIDE_ATTACHED_TEXT, UPPERCASE_ATTACHMENT],
    ids=["attached text first", "attached text last", "uppercase ATTACHMENT"],
)
def test_an_attached_text_file_is_not_the_body(parse: Parse, raw: bytes) -> None:
    letter = parse(raw)

    assert letter.text_body == "Printer broken"
    assert "private notes" not in letter.text_body
    assert letter.html_body is not None and "Printer" in letter.html_body
    assert letter.has_attachments is True
    assert _no_broken_structure(letter), letter.defects


@pytest.mark.parametrize(
    "raw",
    [ATTACHMENT, PDF_THEN_HTML, INLINE_TEXT, ATTACHED_TEXT_BESIDE_HTML, UPPERCASE_ATTACHMENT],
    ids=["plain and pdf", "pdf then html", "inline text", "attached text", "uppercase"],
)
def test_these_letters_take_the_fast_path_and_equal_the_reference(raw: bytes) -> None:
    assert _parse_plain(raw) is not None
    assert parse_letter(raw) == parse_letter_reference(raw)


def test_nested_alternative_after_an_attachment_is_found() -> None:
    raw = _mixed(
        PDF,
        b"Content-Type: multipart/alternative; boundary=a\r\n\r\n"
        b"--a\r\nContent-Type: text/plain\r\n\r\nplain words\r\n"
        b"--a\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--a--\r\n",
    )

    letter = parse_letter(raw)

    assert letter.text_body == "plain words"
    assert letter.html_body is not None and "html words" in letter.html_body
    assert letter.has_attachments is True
    assert _no_broken_structure(letter), letter.defects


def test_related_takes_the_body_from_its_start_part_only() -> None:
    raw = (
        b'Content-Type: multipart/related; boundary=r; start="<body@x>"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\nContent-ID: <other@x>\r\n\r\nnot the body\r\n"
        b"--r\r\nContent-Type: text/html\r\nContent-ID: <body@x>\r\nContent-Disposition: inline\r\n\r\n"
        b"<p>the body</p>\r\n"
        b"--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Disposition: inline\r\n\r\n"
        b"PNG\r\n"
        b"--r--\r\n"
    )

    letter = parse_letter(raw)

    assert letter.text_body == "the body"
    assert letter.has_attachments is False
    assert _no_broken_structure(letter), letter.defects


def test_a_letter_that_is_itself_an_attachment_has_no_body() -> None:
    raw = b"Content-Type: text/plain\r\nContent-Disposition: Attachment; filename=notes.txt\r\n\r\nnotes\r\n"

    letter = parse_letter(raw)

    assert letter.text_body == ""
    assert letter.has_attachments is True
    assert _no_broken_structure(letter), letter.defects


def test_a_nested_multipart_left_unsplit_is_passed_over_for_the_next_part() -> None:
    raw = (
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: multipart/related\r\n\r\nno boundary here\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nHello\r\n--b--\r\n"
    )

    letter = parse_letter(raw)

    assert letter.text_body == "Hello"
    assert _no_broken_structure(letter), letter.defects
