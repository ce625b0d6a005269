"""Integration: the local Dovecot and SMTP relay behave like the real servers the workers will meet."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, fetch_messages, find_special_folder, wait_for_messages
from deploy.local.smtp import SmtpRelay
from tests.fixtures_mail import MailUser

pytestmark = pytest.mark.integration

MakeUser = Callable[..., MailUser]


def _letter(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="mailroom.test")
    msg["X-Mailroom-Case"] = "case-42"
    msg.set_content(body)
    return msg


def _parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    # IMAP hands out CRLF line ends and get_content() keeps them; a reader sees lines.
    return str(part.get_content()).replace("\r\n", "\n")


def test_appended_message_can_be_fetched_back(dovecot: Dovecot, mail_user_factory: MakeUser) -> None:
    user = mail_user_factory()
    letter = _letter("client@example.test", user.address, "Need a quote", "Hello, 12 pallets please.")

    append_message(dovecot.host, dovecot.imap_port, user.address, user.password, letter.as_bytes())

    (raw,) = fetch_messages(dovecot.host, dovecot.imap_port, user.address, user.password)
    got = _parse(raw)
    assert got["Subject"] == "Need a quote"
    assert got["Message-ID"] == letter["Message-ID"]
    assert _body(got) == "Hello, 12 pallets please.\n"


def test_smtp_message_arrives_in_each_recipients_inbox(
    dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: MakeUser
) -> None:
    alice, bob = mail_user_factory("alice"), mail_user_factory("bob")
    letter = _letter(
        "sales@mailroom.test", alice.address, "Zürich visit: Ärger & Freude", "Line one.\n.dot line\n"
    )
    letter["Cc"] = bob.address

    with smtplib.SMTP(smtp_relay.host, smtp_relay.port, timeout=30) as smtp:
        refused = smtp.send_message(letter)
    assert refused == {}

    for user in (alice, bob):
        (raw,) = wait_for_messages(dovecot.host, dovecot.imap_port, user.address, user.password, count=1)
        got = _parse(raw)
        assert got["Subject"] == "Zürich visit: Ärger & Freude"
        assert got["Message-ID"] == letter["Message-ID"]
        assert got["From"] == "sales@mailroom.test"
        assert got["To"] == alice.address
        assert got["Cc"] == bob.address
        assert got["X-Mailroom-Case"] == "case-42"
        assert got["Delivered-To"] == user.address
        assert _body(got) == "Line one.\n.dot line\n"

    sent = [r for r in smtp_relay.received if letter["Message-ID"].encode() in r.data]
    assert len(sent) == 1
    assert sent[0].mail_from == "sales@mailroom.test"
    assert sorted(sent[0].rcpt_tos) == sorted([alice.address, bob.address])


def test_sent_folder_is_found_by_special_use_flag(dovecot: Dovecot, mail_user_factory: MakeUser) -> None:
    user = mail_user_factory()
    login = (dovecot.host, dovecot.imap_port, user.address, user.password)

    sent = find_special_folder(*login, b"\\Sent")
    assert sent == "Sent"

    reply = _letter(user.address, "client@example.test", "Re: Need a quote", "Your quote is attached.")
    append_message(*login, reply.as_bytes(), folder=sent)
    (raw,) = fetch_messages(*login, folder=sent)
    assert _parse(raw)["Subject"] == "Re: Need a quote"
    assert fetch_messages(*login) == []


def test_smtp_auth(dovecot: Dovecot, mail_user_factory: MakeUser) -> None:
    user = mail_user_factory()
    letter = _letter("sales@mailroom.test", user.address, "Authenticated", "Hi.")
    with SmtpRelay(dovecot.host, dovecot.lmtp_port, users={"sales@mailroom.test": "s3cret"}) as relay:
        with smtplib.SMTP(relay.host, relay.port, timeout=30) as smtp:
            with pytest.raises(smtplib.SMTPSenderRefused) as no_login:
                smtp.send_message(letter)
            assert no_login.value.smtp_code == 530
            with pytest.raises(smtplib.SMTPAuthenticationError) as bad_login:
                smtp.login("sales@mailroom.test", "wrong")
            assert bad_login.value.smtp_code == 535

        with smtplib.SMTP(relay.host, relay.port, timeout=30) as smtp:
            smtp.login("sales@mailroom.test", "s3cret")
            smtp.send_message(letter)

    (raw,) = wait_for_messages(dovecot.host, dovecot.imap_port, user.address, user.password, count=1)
    assert _parse(raw)["Subject"] == "Authenticated"


def test_injected_451_fails_one_send_then_delivery_resumes(
    dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory()
    letter = _letter("sales@mailroom.test", user.address, "Retry me", "Second time lucky.")
    smtp_relay.fail_next(451, "4.3.0 Try again later")

    with smtplib.SMTP(smtp_relay.host, smtp_relay.port, timeout=30) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            smtp.send_message(letter)
        assert failed.value.smtp_code == 451
        assert b"Try again later" in failed.value.smtp_error
        smtp.send_message(letter)

    messages = wait_for_messages(dovecot.host, dovecot.imap_port, user.address, user.password, count=1)
    assert [_parse(raw)["Subject"] for raw in messages] == ["Retry me"]


def test_unknown_recipient_is_refused(smtp_relay: SmtpRelay) -> None:
    letter = _letter("sales@mailroom.test", "nobody-here@mailroom.test", "Lost", "Nobody reads this.")

    with smtplib.SMTP(smtp_relay.host, smtp_relay.port, timeout=30) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.send_message(letter)

    code, text = refused.value.recipients["nobody-here@mailroom.test"]
    assert 500 <= code < 600
    assert b"doesn't exist" in text
