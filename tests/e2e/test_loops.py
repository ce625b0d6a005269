"""Never start a mail loop: letters that must not be answered get no reply and their decision says why;
two mailroom deployments answering everything exchange at most one reply; limits hold in a burst."""

from __future__ import annotations

import email
import smtplib
import time
from email import policy
from typing import Any

import pytest

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, fetch_messages, wait_for_messages
from deploy.local.pipeline import local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import LetterDecided, ReplyRequested, ReplySent
from schemas.ids import reply_message_id
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.fixtures_mail import MailUser
from tests.letters import letter

pytestmark = pytest.mark.e2e

ACK = {
    "id": "ack",
    "name": "Answer everything",
    "template": {"subject": "{{ letter.reply_subject }}", "body": "Thanks."},
}


def _box(user: MailUser, name: str, dovecot: Dovecot, relay: SmtpRelay, **kw: Any) -> dict[str, Any]:
    return local_mailbox(name, user.address, user.password, dovecot.imap_port, relay.port, rules=[ACK], **kw)


def _report(customer: str, desk: str) -> bytes:
    """A delivery status notification, as a mail server sends it."""
    return (
        f"From: {customer}\r\nTo: {desk}\r\nSubject: Delivery Status Notification\r\n"
        "Message-ID: <dsn-1@mx.customer.test>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type="delivery-status"; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.test\r\n"
        "--b1--\r\n"
    ).encode()


def test_letters_that_must_not_be_answered_get_no_reply_and_the_decision_names_why(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, other, customer = (mail_user_factory(n) for n in ("desk", "other", "customer"))
    pipeline, reader = pipeline_factory(
        {
            "mailboxes": [
                _box(desk, "desk", dovecot, smtp_relay),
                _box(other, "other", dovecot, smtp_relay),
            ]
        }
    )
    c = customer.address
    cases = {
        "auto-submitted: auto-replied": letter(
            c, desk.address, "Out of office", headers={"Auto-Submitted": "auto-replied"}
        ),
        "x-auto-response-suppress": letter(
            c, desk.address, "Note", headers={"X-Auto-Response-Suppress": "OOF, AutoReply"}
        ),
        "mailroom loop marker": letter(c, desk.address, "Looped", headers={"X-Loop": desk.address}),
        "null return path": letter(c, desk.address, "Bounce", headers={"Return-Path": "<>"}),
        "mailing list": letter(c, desk.address, "News", headers={"List-Id": "<news.customer.test>"}),
        "precedence: bulk": letter(c, desk.address, "Offer", headers={"Precedence": "bulk"}),
        "precedence: auto_reply": letter(c, desk.address, "Away", headers={"Precedence": "auto_reply"}),
        "x-autoreply": letter(c, desk.address, "Away too", headers={"X-Autoreply": "yes"}),
        "x-autorespond": letter(c, desk.address, "Away again", headers={"X-Autorespond": "vacation"}),
        "return path: mailer-daemon": letter(
            c, desk.address, "Returned", headers={"Return-Path": "<MAILER-DAEMON>"}
        ),
        "flagged as spam": letter(c, desk.address, "Win", headers={"X-Spam-Flag": "YES"}),
        "sent by a mailroom mailbox": letter(other.address, desk.address, "From a colleague mailbox"),
        "automated sender: mailer-daemon@customer.test": letter(
            "mailer-daemon@customer.test", desk.address, "Undeliverable"
        ),
        "delivery or feedback report": (_report(c, desk.address), "dsn-1@mx.customer.test"),
    }
    plain, plain_id = letter(f"Ann Lee <{c}>", desk.address, "A real question")
    for raw, _ in cases.values():
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, raw)
    append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, plain)
    pipeline.start()
    try:
        replies = wait_for_messages(dovecot.host, dovecot.imap_port, c, customer.password, 1, timeout=90)
        decided = wait_until(
            "every decision",
            lambda: (
                d
                if len(d := reader.events(topics.LETTERS_DECIDED, LetterDecided)) >= len(cases) + 1
                else None
            ),
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    why = {d.message_id: d.skipped_because for d in decided}
    assert {reason: why[mid] for reason, (_, mid) in cases.items()} == {reason: reason for reason in cases}
    assert why[plain_id] is None
    (request,) = reader.events(topics.REPLIES_REQUESTED, ReplyRequested)
    assert request.in_reply_to == plain_id
    time.sleep(2)  # room for a wrong reply to arrive
    (answer,) = [
        email.message_from_bytes(r, policy=policy.default)
        for r in fetch_messages(dovecot.host, dovecot.imap_port, c, customer.password)
    ]
    assert replies and answer["In-Reply-To"] == f"<{plain_id}>" and answer["References"] == f"<{plain_id}>"
    assert answer["Message-ID"] == f"<{reply_message_id(request.reply_id, desk.address)}>"
    assert str(answer["From"]) == f"Acme Desk <{desk.address}>"
    assert (answer["Auto-Submitted"], answer["X-Auto-Response-Suppress"], answer["X-Loop"]) == (
        "auto-replied",
        "All",
        desk.address,
    )


def test_two_deployments_that_answer_everything_exchange_at_most_one_reply(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    first, second = mail_user_factory("first"), mail_user_factory("second")
    one, _ = pipeline_factory({"mailboxes": [_box(first, "first", dovecot, smtp_relay)]})
    two, two_reader = pipeline_factory({"mailboxes": [_box(second, "second", dovecot, smtp_relay)]})
    one.start()
    two.start()
    raw, _ = letter(first.address, second.address, "Hello from the first mailbox")
    with smtplib.SMTP(dovecot.host, smtp_relay.port) as smtp:
        smtp.sendmail(first.address, [second.address], raw)
    try:
        # The second answers the first (it does not know it is a mailroom too) ...
        wait_for_messages(dovecot.host, dovecot.imap_port, first.address, first.password, 1, timeout=90)
        # ... and the first reads that auto-reply and does not answer it.
        wait_until(
            "the first mailbox's decision",
            lambda: [d for d in one_decisions(one) if d.skipped_because == "auto-submitted: auto-replied"],
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(one)}\n{dump_logs(two)}") from exc
    time.sleep(8)  # a generous wait: nothing else may arrive

    assert len(fetch_messages(dovecot.host, dovecot.imap_port, first.address, first.password)) == 1
    assert len(fetch_messages(dovecot.host, dovecot.imap_port, second.address, second.password)) == 1
    assert len(two_reader.records(topics.REPLIES_REQUESTED)) == 1


def one_decisions(pipeline: Any) -> list[LetterDecided]:
    from deploy.local.pipeline import TopicReader

    reader = TopicReader(pipeline.kafka)
    try:
        return reader.events(topics.LETTERS_DECIDED, LetterDecided)
    finally:
        reader.close()


def test_a_burst_of_letters_gets_one_reply_per_thread_and_at_most_the_hourly_limit(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory({"mailboxes": [_box(desk, "desk", dovecot, smtp_relay)]})
    for n in range(10):  # 10 threads of 2 letters: 20 letters from one sender within a minute
        original, original_id = letter(customer.address, desk.address, f"Question {n}")
        again, _ = letter(
            customer.address,
            desk.address,
            f"Re: Question {n}",
            headers={"In-Reply-To": f"<{original_id}>", "References": f"<{original_id}>"},
        )
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, original)
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, again)
    pipeline.start()
    try:
        decided = wait_until(
            "20 decisions",
            lambda: d if len(d := reader.events(topics.LETTERS_DECIDED, LetterDecided)) >= 20 else None,
        )
        wait_until("the replies", lambda: len(reader.events(topics.REPLY_OUTCOMES, ReplySent)) >= 3)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc
    time.sleep(2)

    answered = [d for d in decided if d.reply_ids]
    assert len(answered) == 3  # the hourly limit per sender
    assert sorted(d.subject for d in answered) == ["Question 0", "Question 1", "Question 2"]
    held = [reason for d in decided for reason in d.limited]
    assert len(held) == 17
    assert sum("of this thread already answered" in r for r in held) == 3
    assert sum("answered in the last hour (limit 3)" in r for r in held) == 14
    assert len(fetch_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password)) == 3


def test_a_reply_to_of_thirty_addresses_gets_one_reply_with_one_recipient(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, first, victim = (mail_user_factory(n) for n in ("desk", "first", "victim"))
    pipeline, reader = pipeline_factory({"mailboxes": [_box(desk, "desk", dovecot, smtp_relay)]})
    others = [f"other{i}@customer.test" for i in range(28)]
    raw, mid = letter(
        "Eve <eve@customer.test>",
        desk.address,
        "Please answer all of us",
        headers={"Reply-To": ", ".join([first.address, *others, victim.address])},
    )
    append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, raw)
    pipeline.start()
    try:
        wait_for_messages(dovecot.host, dovecot.imap_port, first.address, first.password, 1, timeout=90)
        (sent,) = wait_until("the reply's outcome", lambda: reader.events(topics.REPLY_OUTCOMES, ReplySent))
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc
    time.sleep(2)  # room for a wrong reply to arrive

    envelopes = [r.rcpt_tos for r in smtp_relay.received if r.mail_from == desk.address]
    assert envelopes == [[first.address]]
    assert sent.to == (first.address,)
    (request,) = reader.events(topics.REPLIES_REQUESTED, ReplyRequested)
    assert [a.address for a in request.to] == [first.address] and request.in_reply_to == mid
    assert fetch_messages(dovecot.host, dovecot.imap_port, victim.address, victim.password) == []
