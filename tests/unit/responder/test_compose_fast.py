"""The reply's bytes written directly (`responder.wire`) are the message the email package composes: the
same headers in the same order with the same decoded values, the same parts with the same contents, no
defects; anything unusual is left to the email package, which still refuses what it refused."""

from __future__ import annotations

import email
import re
from datetime import datetime, timedelta, timezone
from email import policy
from email.errors import HeaderParseError
from email.message import EmailMessage, Message
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responder.compose import compose, outgoing
from responder.render import RenderedReply, one_line
from responder.wire import reply_bytes
from runtime.mail import SMTP_POLICY
from schemas.config import Mailbox
from schemas.events import Address, ReplyContent, ReplyRequested
from tests.unit.builders import NOW, mailbox

SENDER = Address(name="Acme Support", address="support@acme.example")
ANN = Address(name="Ann Lee", address="ann@customer.example")

# Text as replies carry it: ASCII words and punctuation (quotes, RFC 5322 specials, "=" and "?"), accents,
# other scripts, emoji and combining marks, spaces and line breaks.
_CHARS = st.sampled_from(
    list("abcxyzABCXYZ0123456789 .,;:!?-_'\"()<>@[]\\/=+*#%&~`|{}^$")
    + list("äöüßéèñçİıłøå")
    + [
        "\u2013",
        "\u00a0",
        "\u4e2d",
        "\u6587",
        "\u0416",
        "\u05d0",
        "\u0301",
        "\U0001f600",
        "\U0001f44d\U0001f3fd",
    ]
    + ["\t", "\n", "\r\n", "\r"]
)
_WORDS = st.sampled_from(
    ["Re:", "Fwd:", "invoice", "Printer", "order #1234", "Grüße", "日本語", "a" * 30, ""]
)
_TEXT = st.lists(st.one_of(_CHARS, _WORDS), max_size=40).map("".join)
_LONG_TEXT = st.lists(st.one_of(_CHARS, _WORDS, st.just("x" * 90), st.just("ü" * 50)), max_size=60).map(
    "".join
)
_SUBJECTS = st.one_of(_TEXT, _LONG_TEXT, st.just("Re: " + "word " * 40), st.just("Grüße 😀 " * 12))
_ATOM = st.from_regex(r"[a-z0-9][a-z0-9.+_-]{0,20}[a-z0-9]", fullmatch=True).filter(lambda s: ".." not in s)
_DOMAIN = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,10}){1,2}", fullmatch=True)
_ADDRESSES = st.builds(lambda local, domain: f"{local}@{domain}", _ATOM, _DOMAIN)
_NAMES = st.one_of(
    st.just(""),
    st.sampled_from(
        ["Ann Lee", "Lee, Ann", 'Ann "the boss" Lee', "Jürgen Müller", "Müller, Jürgen", "O'Neil"]
    ),
    _TEXT,
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
)
_RECIPIENTS = st.lists(st.builds(Address, name=_NAMES, address=_ADDRESSES), min_size=1, max_size=5)
_IDS = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _ATOM, _DOMAIN),
    st.from_regex(r"[A-Za-z0-9+=_$-]{10,50}@mail\.example\.com", fullmatch=True),
)
_BODIES = st.one_of(
    _TEXT,
    _LONG_TEXT,
    st.lists(st.one_of(_TEXT, st.just("y" * 120), st.just("é" * 60)), max_size=20).map("\r\n".join),
    st.lists(_TEXT, max_size=30).map("\n".join).map(lambda s: s + "\n"),
)
_HTML = st.lists(
    st.one_of(
        _TEXT.map(lambda t: t.replace("<", "&lt;").replace(">", "&gt;")),
        st.sampled_from(["<p>", "</p>", "<br>", "<b>", "</b>", "<div>", "</div>", "&amp;", "&nbsp;"]),
        st.just("<p>" + "long html line " * 10 + "</p>"),
    ),
    max_size=40,
).map("".join)
_REPLIES = st.one_of(
    st.builds(RenderedReply, subject=_SUBJECTS.map(one_line), body=_BODIES, type=st.just("plain")),
    st.builds(RenderedReply, subject=_SUBJECTS.map(one_line), body=_HTML, type=st.just("html")),
)
_NOWS = st.sampled_from(
    [NOW, datetime(2024, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))), NOW.replace(tzinfo=None)]
)


def _arguments(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "reply": RenderedReply(subject="Re: Printer", body="We are on it.\n", type="plain"),
        "sender": SENDER,
        "to": (ANN,),
        "message_id": "reply-1@acme.example",
        "in_reply_to": "m1@customer.example",
        "references": ("root@customer.example", "m1@customer.example"),
        "now": NOW,
        "auto": True,
    }
    values.update(changes)
    return values


def _slow(arguments: dict[str, Any]) -> bytes:
    return compose(**arguments).as_bytes(policy=SMTP_POLICY)


def _parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _header_values(part: Message) -> list[tuple[str, str]]:
    """Each header's name and decoded value; a multipart's boundary (random in the email package's
    message) left out."""
    values = []
    for name, value in part.items():
        if name.lower() == "content-type":
            params = {k: v for k, v in part.get_params() or [] if k != "boundary"}
            values.append((name, f"{part.get_content_type()} {params}"))
        else:
            values.append((name, str(value)))
    return values


def _parts(message: EmailMessage) -> list[tuple[str, list[tuple[str, str]], str | None]]:
    """Every part, depth first: its content type, its headers and, for a leaf, its decoded content."""
    out = []
    for part in message.walk():
        assert isinstance(part, EmailMessage)
        content = None if part.is_multipart() else part.get_content()
        out.append((part.get_content_type(), _header_values(part), content))
    return out


def _defects(message: EmailMessage) -> list[object]:
    found: list[object] = []
    for part in message.walk():
        found += part.defects
        found += [d for value in part.values() for d in getattr(value, "defects", ())]
    return found


def _assert_well_formed(data: bytes) -> None:
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    head = data.partition(b"\r\n\r\n")[0]
    assert head.isascii()
    # Folded to 78, but for a message id longer than that, which stands alone on its line as written.
    alone = re.compile(rb"(?:(?:Message-ID|In-Reply-To|References):)? <[!-;=?-~]+>")
    assert all(len(line) <= 78 or alone.fullmatch(line) for line in head.split(b"\r\n"))
    assert all(len(word) <= 75 for word in re.findall(rb"=\?utf-8\?[qb]\?[^?]*\?=", data))


def _said(message: EmailMessage, name: str) -> object:
    """What a header that carries the reply's own text says: its addresses, or its decoded text."""
    if name in ("Subject", "In-Reply-To", "References"):
        return str(message[name]) if name in message else None
    return [(a.display_name, a.addr_spec) for a in message[name].addresses]


def _intended(arguments: dict[str, Any]) -> dict[str, object]:
    """What From, To and Subject should say, from the values `compose` is given (names normalized)."""
    return {
        "From": [(" ".join(arguments["sender"].name.split()), arguments["sender"].address)],
        "To": [(" ".join(a.name.split()), a.address) for a in arguments["to"]],
        "Subject": arguments["reply"].subject,
        "In-Reply-To": f"<{arguments['in_reply_to']}>",
        "References": " ".join(f"<{v}>" for v in dict.fromkeys(arguments["references"])) or None,
    }


def _assert_same_message(fast: bytes, slow: bytes, arguments: dict[str, Any]) -> None:
    _assert_well_formed(fast)
    fast_message, slow_message = _parse(fast), _parse(slow)
    assert _defects(fast_message) == []
    fast_parts = _parts(fast_message)
    try:
        slow_parts = _parts(slow_message)
    except (IndexError, HeaderParseError):
        # The email package cannot read back a header it wrote (a display name it folded inside an
        # obsolete local part, say): the direct bytes must say what was meant.
        for name, intended in _intended(arguments).items():
            assert _said(fast_message, name) == intended
        return
    for name, intended in _intended(arguments).items():
        if _said(fast_message, name) != _said(slow_message, name):
            # The email package can split an encoded-word inside a word of a display name (and reads its
            # own header back with a space there: "S öhne"), or drop the space at the end of an
            # encoded-word it splits a subject at ("order#1234"), and writes a message id longer than
            # a line as encoded-words (read back without the space before the next id): where the two
            # differ, the direct bytes must say what was meant and the email package's must not.
            assert _said(fast_message, name) == intended
            assert _said(slow_message, name) != intended
            for headers in (fast_parts[0][1], slow_parts[0][1]):
                headers[:] = [(n, "(differs)" if n == name else v) for n, v in headers]
    assert fast_parts == slow_parts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reply=_REPLIES,
    sender_name=_NAMES,
    to=_RECIPIENTS,
    references=st.lists(_IDS, max_size=12),
    in_reply_to=_IDS,
    now=_NOWS,
    auto=st.booleans(),
)
def test_the_bytes_written_directly_are_the_message_the_email_package_composes(
    reply: RenderedReply,
    sender_name: str,
    to: list[Address],
    references: list[str],
    in_reply_to: str,
    now: datetime,
    auto: bool,
) -> None:
    arguments = _arguments(
        reply=reply,
        sender=Address(name=sender_name, address="support@acme.example"),
        to=tuple(to),
        in_reply_to=in_reply_to,
        references=tuple(references),
        now=now,
        auto=auto,
    )
    fast = reply_bytes(**arguments)
    try:
        slow = _slow(arguments)
    except ValueError:
        assert fast is None  # what the email package refuses is never written directly
        return
    if fast is not None:
        _assert_same_message(fast, slow, arguments)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"auto": False, "references": ()},
        {
            "reply": RenderedReply(
                subject="Re: " + "word " * 40 + "end", body="x" * 200 + "\nshort\n", type="plain"
            )
        },
        {
            "reply": RenderedReply(
                subject="Re: Grüße aus Köln \u2013 İstanbul 😀", body="Grüße\r\n", type="plain"
            )
        },
        {"reply": RenderedReply(subject="日本語の件名" * 8, body="本文" * 100, type="plain")},
        {"reply": RenderedReply(subject="s", body="<p>Dear Ann,</p><p>on it &amp; more</p>", type="html")},
        {"reply": RenderedReply(subject="s", body="<p>" + "Grüße " * 40 + "</p>", type="html")},
        {"reply": RenderedReply(subject="s", body="", type="plain")},
        {"to": (ANN, Address(address="b@customer.example"), Address(name="Lee, Ann", address="c@x.example"))},
        {"to": (Address(name='Ann "the boss" Lee \\ co.', address="ann@customer.example"),)},
        {
            "to": (
                Address(
                    name="Jürgen Anton Müller von Lüdenscheidt und Söhne Kundendienst", address="j@k.example"
                ),
            )
        },
        {"to": tuple(Address(name=f"Customer {i}", address=f"c{i}@customer.example") for i in range(12))},
        {"references": tuple(f"id-{i}@customer.example" for i in range(40))},
        {"sender": Address(name="Ünïcödé Support", address="support@acme.example")},
    ],
    ids=[
        "plain",
        "employee",
        "long-subject-and-lines",
        "non-ascii",
        "cjk",
        "html",
        "html-non-ascii",
        "empty-body",
        "several-recipients",
        "quoted-name",
        "long-non-ascii-name",
        "many-recipients",
        "many-references",
        "non-ascii-sender",
    ],
)
def test_common_replies_are_written_directly(changes: dict[str, Any]) -> None:
    arguments = _arguments(**changes)

    fast = reply_bytes(**arguments)

    assert fast is not None
    _assert_same_message(fast, _slow(arguments), arguments)


def test_an_ascii_reply_is_byte_for_byte_the_email_packages() -> None:
    arguments = _arguments(
        reply=RenderedReply(
            subject="Re: " + "word " * 30 + "end", body="Hello,\n\nwe are on it.\n", type="plain"
        ),
        to=(
            ANN,
            Address(address="b@customer.example"),
            Address(name="Customer " * 12, address="c@x.example"),
        ),
        references=tuple(f"id-{i}@customer.example" for i in range(10)),
    )

    assert reply_bytes(**arguments) == _slow(arguments)


def test_the_boundary_is_the_same_for_the_same_reply_and_in_no_part() -> None:
    html = "<p>--=_ and a line that looks like a boundary</p>"
    arguments = _arguments(reply=RenderedReply(subject="s", body=html, type="html"))

    first, second = reply_bytes(**arguments), reply_bytes(**arguments)

    assert first is not None and first == second
    boundary = _parse(first).get_boundary()
    assert boundary is not None
    assert first.count(f"--{boundary}".encode()) == 3  # two delimiters and the close delimiter


@pytest.mark.parametrize(
    "changes",
    [
        {"reply": RenderedReply(subject="a\r\nBcc: victim@evil.example", body="b", type="plain")},
        {"reply": RenderedReply(subject="a\nBcc: victim@evil.example", body="b", type="plain")},
        {"to": (Address(address="ann@customer.example\r\nBcc: victim@evil.example"),)},
        {"in_reply_to": "m1@customer.example>\r\nBcc: victim@evil.example"},
        {"references": ("a@b\r\nBcc: victim@evil.example",)},
    ],
    ids=["crlf-subject", "lf-subject", "crlf-address", "crlf-in-reply-to", "crlf-references"],
)
def test_a_line_break_in_a_header_value_is_left_to_the_email_package_which_refuses_it(
    changes: dict[str, Any],
) -> None:
    arguments = _arguments(**changes)

    assert reply_bytes(**arguments) is None
    with pytest.raises(ValueError):
        _slow(arguments)


@pytest.mark.parametrize(
    "changes",
    [
        {"to": (Address(name="Jürgen", address="jürgen@kunde.example"),)},
        {"reply": RenderedReply(subject="Re: =?utf-8?q?x?= literal", body="b", type="plain")},
        {"to": (Address(name="=?utf-8?q?x?=", address="ann@customer.example"),)},
        {"reply": RenderedReply(subject="Re: " + "x" * 90, body="b", type="plain")},
        {"to": (Address(name="Ann\x00Lee", address="ann@customer.example"),)},
        {"to": (Address(name="Jürgen Müller-Lüdenscheidt " * 3, address="j@kunde.example"),)},
        {"reply": RenderedReply(subject="tab\there", body="b", type="plain")},
        {"reply": RenderedReply(subject="", body="b", type="plain")},
        {"reply": RenderedReply(subject="s", body="lone \ud800 surrogate", type="plain")},
        {"to": (Address(address="not an address"),)},
        {"to": (Address(address='"quoted local"@customer.example'),)},
        {"to": ()},
    ],
    ids=[
        "smtputf8-address",
        "encoded-word-in-subject",
        "encoded-word-in-name",
        "long-word",
        "control-character-in-name",
        "name-longer-than-an-encoded-word",
        "tab-in-subject",
        "empty-subject",
        "lone-surrogate",
        "no-at-sign",
        "quoted-local-part",
        "no-recipient",
    ],
)
def test_unusual_replies_are_left_to_the_email_package(changes: dict[str, Any]) -> None:
    assert reply_bytes(**_arguments(**changes)) is None


def _request(**content: Any) -> ReplyRequested:
    return ReplyRequested(
        event_id="crm-7",
        occurred_at=NOW,
        reply_id="crm-7",
        mailbox_id="support",
        kind="employee",
        to=content.pop("to", (ANN,)),
        in_reply_to="m2@customer.example",
        references=("m1@customer.example", "m2@customer.example"),
        thread_id="m1@customer.example",
        mailbox_email="support@acme.example",
        author="olga",
        content=ReplyContent(**content),
    )


def _box() -> Mailbox:
    return mailbox()


def test_a_message_id_longer_than_a_line_is_written_as_it_is_on_a_line_of_its_own() -> None:
    """The email package writes such an id (Outlook's often are) as encoded-words, which receivers do not
    match against the letter's Message-ID: the thread breaks. Written directly, it stays an id."""
    long_id = "A" * 40 + "@" + "outlook.example" * 3
    data = reply_bytes(**_arguments(in_reply_to=long_id, references=("first@x.example", long_id)))
    assert data is not None
    lines = data.split(b"\r\n")
    assert f"In-Reply-To: <{long_id}>".encode() in lines
    assert f" <{long_id}>".encode() in lines
    assert b"=?" not in data.split(b"\r\n\r\n", 1)[0]
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["In-Reply-To"] == f"<{long_id}>"
    assert parsed["References"].split() == ["<first@x.example>", f"<{long_id}>"]
    assert max(len(line) for line in lines) <= 998


def test_the_email_packages_path_keeps_a_long_message_id_as_written_too() -> None:
    long_id = "B" * 40 + "@" + "outlook.example" * 3
    short = "s" * 60 + "@x.example"
    data = _slow(_arguments(in_reply_to=long_id, references=(short, long_id, "last@x.example")))
    head = data.partition(b"\r\n\r\n")[0].split(b"\r\n")
    assert b"=?" not in b"".join(head)
    assert f"In-Reply-To: <{long_id}>".encode() in head
    at = head.index(b"References:")
    assert head[at + 1 : at + 4] == [f" <{short}>".encode(), f" <{long_id}>".encode(), b" <last@x.example>"]
    parsed = _parse(data)
    assert parsed["References"].split() == [f"<{short}>", f"<{long_id}>", "<last@x.example>"]


def test_outgoing_sends_the_bytes_written_directly_for_a_common_reply() -> None:
    request = _request(subject="Re: Printer", body="<p>Dear Ann,</p>", type="html")

    data = outgoing(request, _box(), NOW).data

    _parse(data)  # well formed
    assert re.search(rb'boundary="=_[0-9a-f]{32}"', data)  # the email package's are "===...=="


def test_outgoing_still_refuses_a_raw_line_break_the_email_package_refuses() -> None:
    request = _request(
        subject="s", body="b", to=(Address(address="ann@customer.example\r\nBcc: x@evil.example"),)
    )

    with pytest.raises(ValueError):
        outgoing(request, _box(), NOW)


def test_outgoing_leaves_an_smtputf8_reply_to_the_email_package() -> None:
    out = outgoing(
        _request(subject="s", body="b", to=(Address(address="jürgen@kunde.example"),)), _box(), NOW
    )

    assert out.smtputf8
    assert "jürgen@kunde.example".encode() in out.data


def test_a_naive_date_is_written_as_the_email_package_writes_it() -> None:
    arguments = _arguments(now=datetime(2024, 5, 6, 7, 8, 9))

    assert reply_bytes(**arguments) == _slow(arguments)
