"""Every reply arrives although the responder is killed with SIGKILL again and again while 200 are queued."""

from __future__ import annotations

import email
import signal
from collections import Counter
from email import policy
from typing import Any

import pytest
from imapclient import IMAPClient

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import fetch_messages, find_special_folder
from deploy.local.pipeline import local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import ReplySent
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.letters import letter

pytestmark = pytest.mark.e2e

REPLIES = 200
KILLS = 4


def _message_ids(raws: list[bytes]) -> Counter[str]:
    return Counter(str(email.message_from_bytes(r, policy=policy.default)["Message-ID"]) for r in raws)


def test_200_queued_replies_all_arrive_while_the_responder_is_killed(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    ack = {
        "id": "ack",
        "name": "Ack",
        "template": {"subject": "{{ letter.reply_subject }}", "body": "Thanks."},
    }
    pipeline, reader = pipeline_factory(
        {
            "mailboxes": [
                local_mailbox(
                    "desk",
                    desk.address,
                    desk.password,
                    dovecot.imap_port,
                    smtp_relay.port,
                    rules=[ack],
                    limits={"per_sender_per_hour": 1000, "per_sender_per_day": 1000},
                ),
            ]
        }
    )
    with IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False) as imap:
        imap.login(desk.address, desk.password)
        for n in range(REPLIES):
            imap.append("INBOX", letter(customer.address, desk.address, f"Question {n}")[0])
    pipeline.start(["ingest", "matcher"])
    try:
        wait_until("200 queued replies", lambda: reader.count(topics.REPLIES_REQUESTED) >= REPLIES, 180)
        for kill in range(KILLS):
            # Let the responder get going (it reads its ledger first), then kill it mid-queue.
            pipeline.start(["responder"])
            target = reader.count(topics.REPLY_OUTCOMES) + 30
            wait_until(
                f"outcome {target} (kill {kill + 1})",
                lambda t=target: reader.count(topics.REPLY_OUTCOMES) >= t,
                every=0.005,
            )
            pipeline.stop(["responder"], sig=signal.SIGKILL)
        assert len(reader.events(topics.REPLY_OUTCOMES, ReplySent)) < REPLIES, "killed too late to matter"
        pipeline.start(["responder"])
        wait_until(
            "every reply sent and filed",
            lambda: (
                reader.lag("responder", topics.REPLIES_REQUESTED) == 0
                and len(reader.events(topics.REPLY_OUTCOMES, ReplySent)) >= REPLIES
            ),
            240,
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    sent = Counter(e.reply_id for e in reader.events(topics.REPLY_OUTCOMES, ReplySent))
    assert len(sent) == REPLIES and max(sent.values()) == 1  # one outcome per reply
    received = _message_ids(
        fetch_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password)
    )
    assert len(received) == REPLIES  # every reply arrived
    # A kill between the SMTP server's acceptance and the outcome being written is the one window in
    # which a reply goes out twice; the copy has the same Message-ID, so the receiver can drop it.
    assert sum(received.values()) - len(received) <= KILLS
    sent_folder = find_special_folder(dovecot.host, dovecot.imap_port, desk.address, desk.password, b"\\Sent")
    assert sent_folder is not None
    filed = _message_ids(
        fetch_messages(dovecot.host, dovecot.imap_port, desk.address, desk.password, sent_folder)
    )
    assert set(filed) == set(received) and max(filed.values()) == 1  # one copy of each in Sent
