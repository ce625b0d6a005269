"""Text from bytes in the charset a letter really used: labels read as the larger charsets they stand
for, UTF-8 where nothing is named, a guess for long 8-bit text, and whether the label held."""

from __future__ import annotations

import pytest

from runtime.charsets import charset_hint, decode_text, superset

LONG_CHINESE = "这是一个很长的中文句子\uff0c用来测试字符集检测是否可靠。我们的客户经常这样写信。"


@pytest.mark.parametrize(
    ("data", "charset", "text", "held"),
    [
        (b"plain", None, "plain", True),
        (b"plain", "utf-8", "plain", True),
        ("朱镕基总理".encode("gbk"), "gb2312", "朱镕基总理", True),
        ("Preis \u2013 20 €".encode("cp1252"), "ISO-8859-1", "Preis \u2013 20 €", True),
        ("Grüße".encode(), "us-ascii", "Grüße", True),
        ("Grüße".encode(), None, "Grüße", True),
        ("Grüße".encode("cp1252"), None, "Grüße", True),
        (LONG_CHINESE.encode("gb18030"), None, LONG_CHINESE, True),
        (b"Hallo", "rot13", "Hallo", False),
        (b"Hallo", "x-no-such-charset", "Hallo", False),
        (b"\xff\xfe", "utf-8", "\ufffd\ufffd", False),
    ],
)
def test_decode_text(data: bytes, charset: str | None, text: str, held: bool) -> None:
    assert decode_text(data, charset) == (text, held)


def test_a_latin_text_with_an_umlaut_is_not_guessed_into_another_script() -> None:
    assert (
        decode_text(b"auto-replied (Abwesenheit f\xfcr Ann)")[0] == "auto-replied (Abwesenheit f\u00fcr Ann)"
    )


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("GB2312", "gb18030"),
        ("gbk", "gb18030"),
        ("iso-8859-1", "cp1252"),
        ("utf-8", "utf-8"),
        ("ascii", None),
    ],
)
def test_superset(label: str, codec: str | None) -> None:
    assert superset(label) == codec


def test_charset_hint_is_the_first_charset_a_letter_names() -> None:
    raw = (
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b'--b\r\nContent-Type: text/plain; charset="GBK"\r\n'
    )

    assert charset_hint(raw) == "GBK"
    assert charset_hint(b"Subject: x\r\n\r\nbody") is None
