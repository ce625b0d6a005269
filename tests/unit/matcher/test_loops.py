"""Loop guards: each reason a letter must never be auto-answered, and a plain letter with none."""

from __future__ import annotations

import pytest

from matcher.letter import parse_letter
from matcher.loops import auto_reply_block
from schemas.config import AutoReplyLimits
from schemas.events import Address

OWN = frozenset({"support@acme.example", "sales@acme.example"})
ANN = Address(name="Ann Lee", address="ann@customer.example")
PLAIN = b"From: Ann Lee <ann@customer.example>\r\nTo: support@acme.example\r\nSubject: Hello\r\n"


def _block(extra_headers: bytes = b"", sender: Address | None = ANN, top: bytes = PLAIN) -> str | None:
    letter = parse_letter(top + extra_headers + b"\r\nbody\r\n")
    return auto_reply_block(letter, sender, OWN)


def test_a_plain_letter_from_a_person_may_be_answered() -> None:
    assert _block() is None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (b"Auto-Submitted: auto-replied\r\n", "auto-submitted: auto-replied"),
        (b"Auto-Submitted: auto-generated\r\n", "auto-submitted: auto-generated"),
        (b"Auto-Submitted: Auto-Notified\r\n", "auto-submitted: auto-notified"),
        (b"X-Auto-Response-Suppress: All\r\n", "x-auto-response-suppress"),
        (b"X-Auto-Response-Suppress: DR, OOF\r\n", "x-auto-response-suppress"),
        (b"X-Auto-Response-Suppress: autoreply\r\n", "x-auto-response-suppress"),
        (b"X-Loop: support@acme.example\r\n", "mailroom loop marker"),
        (b"X-Loop: other@list.example\r\nX-Loop: Sales@ACME.example\r\n", "mailroom loop marker"),
        (b"Return-Path: <>\r\n", "null return path"),
        (b"List-Id: <users.lists.example>\r\n", "mailing list"),
        (b"List-Unsubscribe: <mailto:leave@lists.example>\r\n", "mailing list"),
        (b"Precedence: bulk\r\n", "precedence: bulk"),
        (b"Precedence: List\r\n", "precedence: list"),
        (b"Precedence: junk\r\n", "precedence: junk"),
        (b"Precedence: auto_reply\r\n", "precedence: auto_reply"),
        (b"X-Autoreply: yes\r\n", "x-autoreply"),
        (b"X-Autorespond: Out of office\r\n", "x-autorespond"),
        (b"X-Autorespond:\r\n", "x-autorespond"),
        (b"Return-Path: <MAILER-DAEMON>\r\n", "return path: mailer-daemon"),
        (b"Return-Path: <mailer-daemon@mx.example>\r\n", "return path: mailer-daemon"),
    ],
)
def test_headers_that_forbid_an_auto_reply(headers: bytes, reason: str) -> None:
    assert _block(headers) == reason


@pytest.mark.parametrize(
    "headers",
    [
        b"Auto-Submitted: no\r\n",
        b"Auto-Submitted: No (written by a person)\r\n",
        b"X-Auto-Response-Suppress: DR, RN, NRN\r\n",
        b"X-Loop: somebody-else@list.example\r\n",
        b"Return-Path: <ann@customer.example>\r\n",
        b"Precedence: first-class\r\n",
        b"X-List: not a list header\r\n",
        b"X-Autoreply: no\r\n",
        b"Return-Path: <mailer@customer.example>\r\n",
    ],
)
def test_headers_that_do_not_forbid_an_auto_reply(headers: bytes) -> None:
    assert _block(headers) is None


def test_a_delivery_report_is_never_answered() -> None:
    top = (
        b"From: Mail Delivery System <mailer@mx.example>\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n"
    )
    report = b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b--\r\n"

    letter = parse_letter(top + report)

    assert (
        auto_reply_block(letter, Address(address="mailer@mx.example"), OWN) == "delivery or feedback report"
    )


def test_a_letter_without_sender_is_never_answered() -> None:
    assert _block(sender=None) == "no sender address"


@pytest.mark.parametrize("address", ["support@acme.example", "Sales@Acme.Example"])
def test_a_letter_from_a_mailroom_mailbox_is_never_answered(address: str) -> None:
    assert _block(sender=Address(address=address)) == "sent by a mailroom mailbox"


@pytest.mark.parametrize(
    "address",
    [
        "mailer-daemon@mx.example",
        "MAILER-DAEMON@mx.example",
        "postmaster@customer.example",
        "noreply@shop.example",
        "no-reply@shop.example",
        "do-not-reply@shop.example",
        "donotreply@shop.example",
        "bounce@news.example",
        "bounces+ann=customer.example@news.example",
        "noreply.orders@shop.example",
        "owner-users@lists.example",
        "users-request@lists.example",
        "users-bounces@lists.example",
        "no_reply@shop.example",
        "No_Reply@shop.example",
        "do_not_reply@shop.example",
    ],
)
def test_automated_senders_are_never_answered(address: str) -> None:
    assert _block(sender=Address(address=address)) == f"automated sender: {address}"


@pytest.mark.parametrize(
    "address",
    [
        "norah@customer.example",
        "replyhere@customer.example",
        "post@customer.example",
        "bouncer.bob@gym.example",
    ],
)
def test_people_whose_names_look_like_robots_are_answered(address: str) -> None:
    assert _block(sender=Address(address=address)) is None


def test_the_first_reason_in_order_is_given() -> None:
    headers = b"Auto-Submitted: auto-replied\r\nPrecedence: bulk\r\nList-Id: <l.example>\r\n"

    assert _block(headers, sender=Address(address="noreply@shop.example")) == "auto-submitted: auto-replied"


@pytest.mark.parametrize(("flag", "answered"), [(b"YES", False), (b"yes ", False), (b"NO", True)])
def test_letters_flagged_as_spam_are_not_answered_unless_the_mailbox_wants_it(
    flag: bytes, answered: bool
) -> None:
    letter = parse_letter(b"From: ann@customer.example\r\nX-Spam-Flag: " + flag + b"\r\n\r\nhi")
    ann = Address(address="ann@customer.example")

    assert (auto_reply_block(letter, ann, OWN) is None) is answered
    assert auto_reply_block(letter, ann, OWN, AutoReplyLimits(reply_to_spam=True)) is None
    if not answered:
        assert auto_reply_block(letter, ann, OWN) == "flagged as spam"


def test_a_mailbox_can_name_more_robot_senders() -> None:
    letter = parse_letter(b"From: alerts@monitoring.example\r\n\r\nDisk full")
    limits = AutoReplyLimits(robot_senders=r"^alerts@|@monitoring\.example$")

    assert auto_reply_block(letter, Address(address="alerts@monitoring.example"), OWN) is None
    assert auto_reply_block(letter, Address(address="ALERTS@monitoring.example"), OWN, limits) == (
        "automated sender: ALERTS@monitoring.example"
    )
    assert auto_reply_block(letter, Address(address="ann@customer.example"), OWN, limits) is None


def test_a_robot_sender_pattern_that_is_not_a_regex_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        AutoReplyLimits(robot_senders="(unclosed")
