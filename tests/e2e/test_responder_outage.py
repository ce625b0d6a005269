"""An SMTP server down for a while: replies are deferred, kept across a restart of the responder, and
all sent once when the server is back; other replies are not held up meanwhile."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, fetch_messages, wait_for_messages
from deploy.local.pipeline import local_mailbox, wait_until
from deploy.local.ports import free_port
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import ReplyDeferred, ReplyFailed, ReplySent
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.letters import letter

pytestmark = pytest.mark.e2e

LETTERS = 10
ACK = {
    "id": "ack",
    "name": "Acknowledge",
    "template": {"subject": "{{ letter.reply_subject }}", "body": "Thanks."},
}


def test_replies_wait_out_an_smtp_outage_across_a_restart_and_each_goes_out_once(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    down, up, customer = mail_user_factory("down"), mail_user_factory("up"), mail_user_factory("customer")
    port = free_port()
    broken = local_mailbox(
        "down",
        down.address,
        down.password,
        dovecot.imap_port,
        port,
        rules=[ACK],
        limits={"per_sender_per_hour": 100, "per_sender_per_day": 100},
    )
    broken["smtp"].update(attempts=2, first_retry_seconds=0.25, retry_hours=1)
    working = local_mailbox("up", up.address, up.password, dovecot.imap_port, smtp_relay.port, rules=[ACK])
    pipeline, reader = pipeline_factory({"mailboxes": [broken, working]})
    for n in range(LETTERS):
        raw, _ = letter(customer.address, down.address, f"Question {n}")
        append_message(dovecot.host, dovecot.imap_port, down.address, down.password, raw)
    other, _ = letter(customer.address, up.address, "To the mailbox whose server works")
    append_message(dovecot.host, dovecot.imap_port, up.address, up.password, other)
    relay = SmtpRelay(dovecot.host, dovecot.lmtp_port, port=port)  # not started: the server is down
    started = False
    pipeline.start()
    outage = time.monotonic()
    try:
        # The other mailbox's reply goes out while the first mailbox's wait.
        wait_for_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password, 1, timeout=90)
        wait_until(
            "deferred replies",
            lambda: len(reader.events(topics.REPLY_OUTCOMES, ReplyDeferred)) >= LETTERS,
            90,
        )
        pipeline.stop(["responder"], sig=signal.SIGKILL)  # what was deferred must survive this
        pipeline.start(["responder"])
        time.sleep(max(0.0, 15 - (time.monotonic() - outage)))
        relay.start()
        started = True
        wait_for_messages(
            dovecot.host, dovecot.imap_port, customer.address, customer.password, LETTERS + 1, timeout=120
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc
    finally:
        if started:
            relay.stop()
    time.sleep(3)  # room for a second copy to arrive

    inbox = fetch_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password)
    assert len(inbox) == LETTERS + 1
    sent = reader.events(topics.REPLY_OUTCOMES, ReplySent)
    assert len(sent) == LETTERS + 1 and len({s.reply_id for s in sent}) == LETTERS + 1
    assert all(s.attempts > 2 for s in sent if s.mailbox_id == "down")
    assert reader.events(topics.REPLY_OUTCOMES, ReplyFailed) == []
    assert len(relay.received) == LETTERS
