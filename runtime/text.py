"""Pure: text helpers shared by workers: html to readable text (html-only letters, replies' text part),
and header text that arrived as raw 8-bit bytes."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from runtime.charsets import decode_text

__all__ = ["has_raw_bytes", "html_to_text", "unmangle"]

_BLOCKS = {"p", "div", "br", "li", "tr", "blockquote", "pre", "table", "hr", "h1", "h2", "h3", "h4", "h5"}
_CELLS = {"td", "th"}
_HIDDEN = {"script", "style", "head", "title"}
_SPACE = re.compile(r"\s+")


def has_raw_bytes(text: str) -> bool:
    """Whether header text parsed from bytes carries raw 8-bit bytes (as surrogate escapes)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def unmangle(text: str, charset: str | None = None) -> str:
    """Header text parsed from raw 8-bit bytes carries them as surrogate escapes: read them in the
    letter's `charset` (see `runtime.charsets`), else as UTF-8 (RFC 6532), else as the best guess, so
    the text is readable and can be serialized."""
    if not has_raw_bytes(text):
        return text
    return decode_text(text.encode("utf-8", "surrogateescape"), charset)[0]


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden: list[str] = []
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._hidden.clear()  # a head that was never closed ends here
        elif tag in _HIDDEN:
            self._hidden.append(tag)
        elif tag in _BLOCKS:
            self.parts.append("\n")
            self._pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:  # <br/>: one break, not an opening and a closing one
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            if tag in self._hidden:
                del self._hidden[self._hidden.index(tag) :]
        elif tag in _BLOCKS:
            self.parts.append("\n")
            self._pre -= tag == "pre" and self._pre > 0
        elif tag in _CELLS:
            self.parts.append(" ")

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        """`<![ if !supportLists ]>` and the like (Office's conditional sections) are skipped, their
        content kept: the standard parser raises on them."""
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i)
            return len(self.rawdata) if end < 0 else end + 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            # As a browser shows it: line breaks in the source are spaces, except inside <pre>.
            self.parts.append(data if self._pre else _SPACE.sub(" ", data))


def html_to_text(html: str) -> str:
    """Readable text of an html body: tags dropped, blocks on their own lines, scripts and styles removed."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).splitlines())
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
