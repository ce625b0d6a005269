"""The responder end to end: retries, refusals, the copy in the Sent folder, employees' replies, and what
happens after a crash between sending and filing. Real Kafka, Dovecot and SMTP; workers as processes."""

from __future__ import annotations

import email
import logging
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from typing import Any, NamedTuple

import pytest
from imapclient import IMAPClient
from kafka import KafkaProducer

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, fetch_messages
from deploy.local.pipeline import Pipeline, TopicReader, local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from responder.imap import SentFolder
from schemas import topics
from schemas.config import ImapSettings, ReplyTemplate
from schemas.events import (
    Address,
    Event,
    ReplyContent,
    ReplyFailed,
    ReplyFiled,
    ReplyFilingFailed,
    ReplyRequested,
    ReplySent,
    event_type_of,
    utcnow,
)
from schemas.ids import deterministic_id, reply_message_id
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.fixtures_mail import MailUser
from tests.letters import letter

pytestmark = pytest.mark.e2e

ACK = {
    "id": "ack",
    "name": "Acknowledge",
    "template": {"subject": "{{ letter.reply_subject }}", "body": "Hello {{ letter.from_name }}, got it."},
}


class Copy(NamedTuple):
    """A message in the Sent folder: its bytes and flags."""

    raw: bytes
    flags: tuple[bytes, ...]

    @property
    def message(self) -> EmailMessage:
        return _parse(self.raw)


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _box(user: MailUser, name: str, dovecot: Dovecot, relay: SmtpRelay, **smtp: Any) -> dict[str, Any]:
    box = local_mailbox(name, user.address, user.password, dovecot.imap_port, relay.port, rules=[ACK])
    box["smtp"].update(first_retry_seconds=0.2, **smtp)
    return box


@contextmanager
def _imap(dovecot: Dovecot, user: MailUser) -> Iterator[IMAPClient]:
    client = IMAPClient(dovecot.host, dovecot.imap_port, ssl=False, timeout=30)
    client.login(user.address, user.password)
    try:
        yield client
    finally:
        client.logout()


def _sent_copies(dovecot: Dovecot, user: MailUser) -> list[Copy]:
    """The messages in the mailbox's \\Sent folder, oldest first (read-only: flags stay as they are)."""
    with _imap(dovecot, user) as client:
        folder = client.find_special_folder(b"\\Sent")
        assert folder == "Sent"
        client.select_folder(folder, readonly=True)
        uids = sorted(client.search(["ALL"]))
        fetched = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
        return [Copy(bytes(fetched[u][b"BODY[]"]), tuple(fetched[u][b"FLAGS"])) for u in uids]


def _inbox(dovecot: Dovecot, user: MailUser) -> list[EmailMessage]:
    return [_parse(r) for r in fetch_messages(dovecot.host, dovecot.imap_port, user.address, user.password)]


def _publish(pipeline: Pipeline, spec: topics.TopicSpec, key: str, *events: Event) -> None:
    """Writes events as a downstream system does: kafka-python, the pipeline's namespace."""
    producer = KafkaProducer(bootstrap_servers=pipeline.kafka.bootstrap_servers)
    try:
        for event in events:
            producer.send(pipeline.kafka.topic(spec), key=key.encode(), value=event.to_bytes()).get(
                timeout=30
            )
    finally:
        producer.close()


def _request(
    box: MailUser, customer: MailUser, reply_id: str, kind: str = "employee", **fields: Any
) -> ReplyRequested:
    """A request to answer the customer's letter <question-1@customer.test> as mailbox `desk`."""
    values: dict[str, Any] = {
        "event_id": reply_id,
        "occurred_at": utcnow(),
        "reply_id": reply_id,
        "mailbox_id": "desk",
        "kind": kind,
        "to": (Address(name="Ann Lee", address=customer.address),),
        "in_reply_to": "question-1@customer.test",
        "references": ("root-1@customer.test", "question-1@customer.test"),
        "thread_id": "root-1@customer.test",
        "mailbox_email": box.address,
    }
    if kind == "employee":
        values.update(
            author="olga",
            content=ReplyContent(
                subject="Re: Printer on fire",
                body="Dear Ann,\n\nthe technician comes at {{ 9 }} tomorrow.\n\nOlga, Acme Desk\n",
            ),
        )
    else:
        values.update(rule_id="ack", rule_name="Acknowledge", template=ReplyTemplate(subject="Re", body="Hi"))
    values.update(fields)
    return ReplyRequested(**values)


def _wait(pipeline: Pipeline, what: str, probe: Any, timeout: float = 90.0) -> Any:
    try:
        return wait_until(what, probe, timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc


def _outcomes(reader: TopicReader) -> list[str | None]:
    """The event types on the outcomes topic, in order (one reply per test)."""
    return [event_type_of(r.value) for r in reader.records(topics.REPLY_OUTCOMES)]


def test_a_letter_gets_one_reply_and_its_copy_in_the_sent_folder(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory({"mailboxes": [_box(desk, "desk", dovecot, smtp_relay)]})
    pipeline.start(["ingest", "matcher", "responder"])
    raw, question_id = letter(f"Ann Lee <{customer.address}>", desk.address, "Printer on fire")
    append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, raw)

    filed = _wait(pipeline, "ReplyFiled", lambda: reader.events(topics.REPLY_OUTCOMES, ReplyFiled))
    (reply,) = _inbox(dovecot, customer)
    copies = _sent_copies(dovecot, desk)
    (sent,) = reader.events(topics.REPLY_OUTCOMES, ReplySent)
    pipeline.stop()

    assert reply["In-Reply-To"] == f"<{question_id}>"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert [c.message["Message-ID"] for c in copies] == [reply["Message-ID"]]
    assert b"\\Seen" in copies[0].flags
    assert copies[0].raw == sent.message  # the copy is the very bytes the SMTP server took
    assert (sent.smtp_code, sent.smtp_text, sent.attempts) == (250, "OK delivered", 1)
    assert f"<{sent.message_id}>" == reply["Message-ID"]
    assert [(f.folder, f.already_there, f.message_id) for f in filed] == [("Sent", False, sent.message_id)]
    assert filed[0].uid is not None
    assert _outcomes(reader) == ["ReplySent", "ReplyFiled"]
    assert [m["Message-ID"] for m in _inbox(dovecot, desk)] == [f"<{question_id}>"]  # INBOX untouched


def test_451_twice_then_accepted_delivers_one_reply(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory({"mailboxes": [_box(desk, "desk", dovecot, smtp_relay)]})
    pipeline.start(["ingest", "matcher", "responder"])
    raw, question_id = letter(customer.address, desk.address, "Are you open on Sunday?")
    smtp_relay.fail_next(451, "4.3.0 Try again later", times=2)
    try:
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, raw)
        (sent,) = _wait(pipeline, "ReplySent", lambda: reader.events(topics.REPLY_OUTCOMES, ReplySent))
        _wait(pipeline, "ReplyFiled", lambda: reader.events(topics.REPLY_OUTCOMES, ReplyFiled))
    finally:
        smtp_relay.fail_next(0, "", times=0)
    pipeline.stop()

    assert (sent.attempts, sent.smtp_code) == (3, 250)
    replies = _inbox(dovecot, customer)
    assert [m["In-Reply-To"] for m in replies] == [f"<{question_id}>"]
    assert len([r for r in smtp_relay.received if f"<{sent.message_id}>".encode() in r.data]) == 1
    log = pipeline.log("responder")
    assert "451 4.3.0 Try again later; attempt 1 of 4" in log
    assert "attempt 2 of 4" in log and "attempt 3 of 4" not in log
    assert len(_sent_copies(dovecot, desk)) == 1
    assert _outcomes(reader) == ["ReplySent", "ReplyFiled"]


def test_550_fails_at_once_and_nothing_is_filed(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory({"mailboxes": [_box(desk, "desk", dovecot, smtp_relay)]})
    pipeline.start(["ingest", "matcher", "responder"])
    raw, _ = letter(customer.address, desk.address, "Unsubscribe me")
    smtp_relay.fail_next(550, "5.7.1 Relaying denied", times=2)
    try:
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, raw)
        (failed,) = _wait(pipeline, "ReplyFailed", lambda: reader.events(topics.REPLY_OUTCOMES, ReplyFailed))
        # The relay had two failures queued: the responder used one, so the next message meets the other.
        with smtplib.SMTP(smtp_relay.host, smtp_relay.port, timeout=30) as probe:
            with pytest.raises(smtplib.SMTPDataError) as second:
                probe.sendmail(customer.address, [desk.address], b"Subject: probe\r\n\r\nprobe\r\n")
    finally:
        smtp_relay.fail_next(0, "", times=0)
    pipeline.stop()

    assert second.value.smtp_code == 550
    assert (failed.smtp_code, failed.smtp_text, failed.retriable, failed.attempts) == (
        550,
        "5.7.1 Relaying denied",
        False,
        1,
    )
    assert "attempt 1 of" not in pipeline.log("responder")
    assert _inbox(dovecot, customer) == []
    assert _sent_copies(dovecot, desk) == []
    assert _outcomes(reader) == ["ReplyFailed"]


def test_an_employee_reply_is_sent_as_written_without_auto_headers_and_filed(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    # envelope_from null is for auto-replies only: an employee's reply keeps the mailbox as sender.
    pipeline, reader = pipeline_factory(
        {"mailboxes": [_box(desk, "desk", dovecot, smtp_relay, envelope_from="null")]}
    )
    pipeline.start(["responder"])
    request = _request(desk, customer, "crm-note-4711")
    _publish(pipeline, topics.REPLIES_REQUESTED, "desk", request)

    _wait(pipeline, "ReplyFiled", lambda: reader.events(topics.REPLY_OUTCOMES, ReplyFiled))
    (reply,) = _inbox(dovecot, customer)
    (sent,) = reader.events(topics.REPLY_OUTCOMES, ReplySent)
    pipeline.stop()

    message_id = reply_message_id("crm-note-4711", desk.address)
    assert reply["Message-ID"] == f"<{message_id}>" and sent.message_id == message_id
    assert reply["From"] == f"Acme Desk <{desk.address}>"
    assert reply["To"] == f"Ann Lee <{customer.address}>"
    assert reply["Subject"] == "Re: Printer on fire"
    assert reply["In-Reply-To"] == "<question-1@customer.test>"
    assert reply["References"] == "<root-1@customer.test> <question-1@customer.test>"
    assert reply["X-Loop"] == desk.address
    assert "Auto-Submitted" not in reply and "X-Auto-Response-Suppress" not in reply
    body = reply.get_content().replace("\r\n", "\n")
    assert body == "Dear Ann,\n\nthe technician comes at {{ 9 }} tomorrow.\n\nOlga, Acme Desk\n"
    (received,) = [r for r in smtp_relay.received if f"<{message_id}>".encode() in r.data]
    assert received.mail_from == desk.address
    (copy,) = _sent_copies(dovecot, desk)
    assert copy.raw == sent.message and b"\\Seen" in copy.flags
    assert _outcomes(reader) == ["ReplySent", "ReplyFiled"]


def test_auto_replies_of_a_mailbox_set_to_the_null_sender_go_from_it(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory(
        {"mailboxes": [_box(desk, "desk", dovecot, smtp_relay, envelope_from="null")]}
    )
    pipeline.start(["responder"])
    _publish(pipeline, topics.REPLIES_REQUESTED, "desk", _request(desk, customer, "auto-1", kind="auto"))

    _wait(pipeline, "ReplyFiled", lambda: reader.events(topics.REPLY_OUTCOMES, ReplyFiled))
    pipeline.stop()

    message_id = reply_message_id("auto-1", desk.address)
    (received,) = [r for r in smtp_relay.received if f"<{message_id}>".encode() in r.data]
    assert received.mail_from == "<>"  # MAIL FROM:<>
    (reply,) = _inbox(dovecot, customer)
    assert reply["Auto-Submitted"] == "auto-replied"


@pytest.mark.parametrize("copy_there", [False, True], ids=["not-appended", "appended-before-the-crash"])
def test_a_reply_sent_but_not_filed_is_filed_and_not_sent_again(
    pipeline_factory: PipelineFactory,
    dovecot: Dovecot,
    smtp_relay: SmtpRelay,
    mail_user_factory: Any,
    copy_there: bool,
) -> None:
    """The worker stopped after ReplySent was written: the copy is filed from its bytes (once)."""
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory({"mailboxes": [_box(desk, "desk", dovecot, smtp_relay)]})
    request = _request(desk, customer, "crm-note-9")
    message_id = reply_message_id("crm-note-9", desk.address)
    data = (
        f"From: Acme Desk <{desk.address}>\r\nTo: {customer.address}\r\nSubject: Re: Printer on fire\r\n"
        f"Message-ID: <{message_id}>\r\nX-Loop: {desk.address}\r\n\r\nSent before the crash.\r\n"
    ).encode()
    sent = ReplySent(
        event_id=deterministic_id("reply-outcome", "crm-note-9"),
        occurred_at=utcnow(),
        reply_id="crm-note-9",
        mailbox_id="desk",
        message_id=message_id,
        to=(customer.address,),
        smtp_code=250,
        smtp_text="OK delivered",
        message=data,
    )
    pipeline.cli("topics")
    _publish(pipeline, topics.REPLY_OUTCOMES, "crm-note-9", sent)
    if copy_there:
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, data, folder="Sent")
    _publish(pipeline, topics.REPLIES_REQUESTED, "desk", request)
    pipeline.start(["responder"])

    (filed,) = _wait(pipeline, "ReplyFiled", lambda: reader.events(topics.REPLY_OUTCOMES, ReplyFiled))
    pipeline.stop()

    assert filed.already_there is copy_there
    assert [c.raw for c in _sent_copies(dovecot, desk)] == [data]
    assert _inbox(dovecot, customer) == []  # not sent again
    assert not [r for r in smtp_relay.received if f"<{message_id}>".encode() in r.data]
    assert _outcomes(reader) == ["ReplySent", "ReplyFiled"]


def test_a_copy_that_cannot_be_filed_is_reported_and_the_reply_not_sent_again(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    box = _box(desk, "desk", dovecot, smtp_relay)
    box["imap"]["password"] = "not-the-password"
    pipeline, reader = pipeline_factory({"mailboxes": [box]})
    pipeline.start(["responder"])
    _publish(pipeline, topics.REPLIES_REQUESTED, "desk", _request(desk, customer, "crm-note-5"))

    (failed,) = _wait(
        pipeline, "ReplyFilingFailed", lambda: reader.events(topics.REPLY_OUTCOMES, ReplyFilingFailed)
    )
    # Consumed again from the start: the outcomes say it was sent and its filing failed; nothing more.
    pipeline.stop()
    pipeline.cli("replay", "responder")
    pipeline.start(["responder"])
    _wait(
        pipeline,
        "the replayed request",
        lambda: "already handled; not sent again" in pipeline.log("responder"),
    )
    pipeline.stop()

    assert "login refused" in failed.reason and failed.retriable is False and failed.attempts == 1
    assert len(_inbox(dovecot, customer)) == 1
    assert _outcomes(reader) == ["ReplySent", "ReplyFilingFailed"]


def test_the_sent_folder_edge_files_once_and_reconnects_after_a_drop(
    dovecot: Dovecot, mail_user_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The IMAP edge alone against the real Dovecot: the \\Sent folder wins over the configured name, a
    second filing finds the copy, a connection the server dropped is reopened."""
    desk = mail_user_factory("desk")
    settings = ImapSettings(
        host=dovecot.host,
        port=dovecot.imap_port,
        ssl=False,
        username=desk.address,
        password=desk.password,
        sent_folder="Replies",
    )
    folder = SentFolder(settings)
    caplog.set_level(logging.INFO, logger="responder.imap")
    first = f"From: {desk.address}\r\nMessage-ID: <reply-a@mailroom.test>\r\n\r\nOne\r\n".encode()
    second = f"From: {desk.address}\r\nMessage-ID: <reply-b@mailroom.test>\r\n\r\nTwo\r\n".encode()
    try:
        filed = folder.file(first, "reply-a@mailroom.test", utcnow())
        again = folder.file(first, "reply-a@mailroom.test", utcnow())
        folder._client.shutdown()  # type: ignore[union-attr]  # as a server timing out an idle client
        after_drop = folder.file(second, "reply-b@mailroom.test", utcnow())
    finally:
        folder.close()

    assert (filed.folder, filed.appended) == ("Sent", True)
    assert (again.folder, again.appended, again.uid) == ("Sent", False, filed.uid)
    assert after_drop.appended and after_drop.uid != filed.uid
    assert "connection lost, reconnecting" in caplog.text
    assert [c.raw for c in _sent_copies(dovecot, desk)] == [first, second]
    assert all(b"\\Seen" in c.flags for c in _sent_copies(dovecot, desk))
