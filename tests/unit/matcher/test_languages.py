"""The letter's languages from Content-Language and Accept-Language, most wanted first."""

from __future__ import annotations

import pytest

from matcher.languages import accepted_languages, content_languages, letter_languages
from matcher.letter import parse_letter
from tests.unit.builders import letter_bytes


def with_headers(raw: bytes, headers: dict[str, str]) -> bytes:
    """`raw` with `headers` on top (`letter_bytes` cannot add Content-* headers: setting the content
    replaces them)."""
    return b"".join(f"{name}: {value}\n".encode() for name, value in headers.items()) + raw


@pytest.mark.parametrize(
    ("value", "languages"),
    [
        ("de", ("de",)),
        ("de-CH", ("de-ch",)),
        (" de, en-GB ", ("de", "en-gb")),
        ("", ()),
        ("de_DE, fr", ("fr",)),
    ],
)
def test_content_language(value: str, languages: tuple[str, ...]) -> None:
    assert content_languages(value) == languages


@pytest.mark.parametrize(
    ("value", "languages"),
    [
        ("da, en-gb;q=0.8, en;q=0.7", ("da", "en-gb", "en")),
        ("en;q=0.5, de;q=0.9, fr", ("fr", "de", "en")),
        ("de-CH, de;q=0.9, en;q=0.9, *;q=0.5", ("de-ch", "de", "en")),
        ("fr;q=0.5, it;q=0.5, es;q=0.5", ("fr", "it", "es")),
        ("en; q = 0.3 , de ;q=1", ("de", "en")),
        ("de;q=0, en", ("en",)),
        ("de;q=zero, en;q=0.1", ("en",)),
        ("de;q=2, en;q=1.0", ("en",)),
        ("de;level=1, en;q=0.5", ("de", "en")),
        ("en, EN;q=0.5", ("en",)),
        ("*", ()),
        ("", ()),
        ("x y, fr", ("fr",)),
    ],
)
def test_accept_language_by_q_value(value: str, languages: tuple[str, ...]) -> None:
    assert accepted_languages(value) == languages


@pytest.mark.parametrize(
    ("headers", "languages"),
    [
        ({}, ()),
        ({"Content-Language": "de"}, ("de",)),
        ({"Accept-Language": "fr;q=0.4, it"}, ("it", "fr")),
        ({"Content-Language": "de", "Accept-Language": "fr, de;q=0.5"}, ("de", "fr")),
        ({"Content-Language": "de-AT", "Accept-Language": "en;q=0.5, de-AT"}, ("de-at", "en")),
    ],
    ids=["none", "content language", "accepted", "written before accepted", "once each"],
)
def test_a_letters_languages(headers: dict[str, str], languages: tuple[str, ...]) -> None:
    parsed = parse_letter(with_headers(letter_bytes(), headers))

    assert letter_languages(parsed.headers) == languages


def test_repeated_headers_count_in_order() -> None:
    headers = {"content-language": ("de", "fr"), "accept-language": ("it;q=0.5", "es")}

    assert letter_languages(headers) == ("de", "fr", "es", "it")
