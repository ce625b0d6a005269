"""Replies over STARTTLS and implicit TLS; an untrusted certificate fails the reply at once."""

from __future__ import annotations

import email
import tempfile
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, wait_for_messages
from deploy.local.pipeline import local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from deploy.local.tls import self_signed, server_context
from schemas import topics
from schemas.events import ReplyFailed, ReplySent
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.letters import letter

pytestmark = pytest.mark.e2e

ACK = {"id": "ack", "name": "Ack", "template": {"subject": "{{ letter.reply_subject }}", "body": "Thanks."}}


@pytest.fixture(scope="module")
def certificate() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(prefix="mailroom-tls-") as directory:
        yield self_signed(Path(directory))


@pytest.mark.parametrize(("tls", "security"), [("starttls", "starttls"), ("implicit", "tls")])
def test_replies_go_out_over_tls(
    tls: Any,
    security: str,
    certificate: tuple[Path, Path],
    pipeline_factory: PipelineFactory,
    dovecot: Dovecot,
    mail_user_factory: Any,
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    with SmtpRelay(
        dovecot.host, dovecot.lmtp_port, tls=tls, tls_context=server_context(*certificate)
    ) as relay:
        pipeline, reader = pipeline_factory(
            {
                "mailboxes": [
                    local_mailbox(
                        "desk",
                        desk.address,
                        desk.password,
                        dovecot.imap_port,
                        relay.port,
                        rules=[ACK],
                        smtp={
                            "host": "127.0.0.1",
                            "port": relay.port,
                            "security": security,
                            "verify_certificates": False,
                        },  # a self-signed test certificate
                    )
                ]
            }
        )
        raw, message_id = letter(customer.address, desk.address, "Over TLS")
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, raw)
        pipeline.start()
        try:
            (reply,) = wait_for_messages(
                dovecot.host, dovecot.imap_port, customer.address, customer.password, 1, timeout=90
            )
            sent = wait_until("ReplySent", lambda: reader.events(topics.REPLY_OUTCOMES, ReplySent))
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc
        finally:
            pipeline.stop()

    assert email.message_from_bytes(reply, policy=policy.default)["In-Reply-To"] == f"<{message_id}>"
    assert [(s.smtp_code, s.attempts) for s in sent] == [(250, 1)]


def test_an_untrusted_certificate_fails_the_reply_at_once(
    certificate: tuple[Path, Path],
    pipeline_factory: PipelineFactory,
    dovecot: Dovecot,
    mail_user_factory: Any,
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    with SmtpRelay(
        dovecot.host, dovecot.lmtp_port, tls="starttls", tls_context=server_context(*certificate)
    ) as relay:
        pipeline, reader = pipeline_factory(
            {
                "mailboxes": [
                    local_mailbox(
                        "desk",
                        desk.address,
                        desk.password,
                        dovecot.imap_port,
                        relay.port,
                        rules=[ACK],
                        smtp={
                            "host": "127.0.0.1",
                            "port": relay.port,
                            "security": "starttls",
                        },  # checks certificates
                    )
                ]
            }
        )
        append_message(
            dovecot.host,
            dovecot.imap_port,
            desk.address,
            desk.password,
            letter(customer.address, desk.address, "Untrusted")[0],
        )
        pipeline.start()
        try:
            failed = wait_until("ReplyFailed", lambda: reader.events(topics.REPLY_OUTCOMES, ReplyFailed))
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc
        finally:
            pipeline.stop()

    assert [(f.retriable, f.attempts) for f in failed] == [(False, 1)]
    assert "certificate not trusted" in failed[0].reason
    assert relay.received == []
