"""Pure: text from bytes in whatever charset a letter really used, which is often not the one it names.

Mail programs name a charset and write in a larger one (GB2312 for GBK text, ISO-8859-1 for
windows-1252), or name none and write 8-bit text; headers arrive as raw 8-bit bytes. Read in this order:
the named charset as the larger one it usually stands for (the WHATWG encoding standard's mapping),
strictly; UTF-8, strictly; charset-normalizer's guess; and last the named charset (or UTF-8) with
replacement characters.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

__all__ = ["charset_hint", "decode_text", "superset"]

_SUPERSETS = {
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "csgb2312": "gb18030",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "big5": "big5hkscs",
}
_ASCII = {"us-ascii", "ascii", "ansi_x3.4-1968"}
_HINT = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_GUESS_MIN_BYTES = 16
_GUESS_MIN_SHARE = 0.2
"""charset-normalizer guesses poorly on short text, and on text with a few 8-bit bytes among ASCII
(Latin text with an umlaut or two): such text is read as windows-1252."""


def superset(charset: str | None) -> str | None:
    """The codec to read text labelled `charset` with (None: no usable label)."""
    if not charset:
        return None
    label = charset.strip().lower()
    if label in _ASCII:
        return None  # 8-bit text labelled ASCII: the label says nothing
    label = _SUPERSETS.get(label, label)
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    return label if getattr(info, "_is_text_encoding", True) else None


def decode_text(data: bytes, charset: str | None = None) -> tuple[str, bool]:
    """The text of `data`, and whether the label held: the text was read in the charset named (or in
    the larger one it stands for), or, with no charset named, without a replacement character."""
    named = superset(charset)
    label_held = named is not None or not charset or charset.strip().lower() in _ASCII
    if data.isascii():
        return data.decode("ascii"), label_held
    for codec in dict.fromkeys(c for c in (named, "utf-8") if c):
        try:
            return data.decode(codec), label_held and (named is None or codec == named)
        except (UnicodeDecodeError, LookupError, ValueError):
            continue
    eight_bit = sum(1 for byte in data if byte > 0x7F)
    if len(data) >= _GUESS_MIN_BYTES and eight_bit >= _GUESS_MIN_SHARE * len(data):
        guess = from_bytes(data).best()
        if guess is not None:
            return str(guess), label_held and named is None
    text = data.decode(named or "cp1252", "replace")
    return text, label_held and named is None and "\ufffd" not in text


def charset_hint(raw: bytes) -> str | None:
    """The first charset a letter names anywhere (its raw 8-bit headers are most likely in it)."""
    found = _HINT.search(raw, 0, 256 * 1024)
    return found.group(1).decode("ascii") if found else None
