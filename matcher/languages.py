"""Pure: the languages a letter is in or its sender reads, from its `Content-Language` and
`Accept-Language` headers, for choosing a reply template's language variant; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["accepted_languages", "content_languages", "letter_languages"]

_TAG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")


def letter_languages(headers: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """The letter's languages, lower-cased, most wanted first: those it says it is written in
    (`Content-Language`, in order), then those its sender accepts (`Accept-Language`, by q-value; ties in
    the order given). `headers` maps lower-cased header names to their values, as `ParsedLetter.headers`."""
    written = content_languages(", ".join(headers.get("content-language", ())))
    accepted = accepted_languages(", ".join(headers.get("accept-language", ())))
    return tuple(dict.fromkeys((*written, *accepted)))


def content_languages(value: str) -> tuple[str, ...]:
    """The tags of a `Content-Language` value (`de, en-GB`), lower-cased, in order; anything that is not
    a language tag is left out."""
    return tuple(tag for item in value.split(",") if _TAG.fullmatch(tag := item.strip().lower()))


def accepted_languages(value: str) -> tuple[str, ...]:
    """The tags of an `Accept-Language` value (`de-CH, de;q=0.9, en;q=0.5, *;q=0.1`), lower-cased, the
    highest q-value first (1 when not given; ties keep their order). Left out: `*` (it names no
    language), tags refused with q=0, and entries with a malformed tag or q-value."""
    weighted: list[tuple[float, str]] = []
    for item in value.split(","):
        tag, *params = (part.strip() for part in item.split(";"))
        tag = tag.lower()
        if not _TAG.fullmatch(tag):
            continue
        quality = 1.0
        for param in params:
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(number)
                except ValueError:
                    quality = -1.0
        if 0 < quality <= 1:
            weighted.append((quality, tag))
    weighted.sort(key=lambda entry: -entry[0])  # stable: equal q-values stay in the sender's order
    return tuple(dict.fromkeys(tag for _, tag in weighted))
