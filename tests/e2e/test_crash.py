"""Exactly one record per thread although the converter is killed with SIGKILL again and again."""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import pytest
from imapclient import IMAPClient

from deploy.local.dovecot import Dovecot
from deploy.local.pipeline import local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import LeadCreated
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.letters import letter

pytestmark = pytest.mark.e2e

THREADS = 500
KILLS = 4


def test_500_threads_make_exactly_500_leads_while_the_converter_is_killed(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory(
        {
            "mailboxes": [
                local_mailbox(
                    "desk",
                    desk.address,
                    desk.password,
                    dovecot.imap_port,
                    smtp_relay.port,
                    processing={"type": "lead"},
                ),
            ]
        },
        # Small batches, so that a kill lands mid-stream: 500 letters are one batch by default.
        MAILROOM_KAFKA_BATCH_RECORDS="10",
    )
    with IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False) as imap:
        imap.login(desk.address, desk.password)
        for n in range(THREADS):
            imap.append("INBOX", letter(customer.address, desk.address, f"Question {n}", f"Body {n}")[0])
    pipeline.start(["ingest", "matcher"])
    try:
        wait_until(
            "500 threaded letters", lambda: len(reader.records(topics.LETTERS_THREADED)) >= THREADS, 180
        )
        done = 0
        for kill in range(KILLS):
            # Each time let the converter get going (it reads its ledger first), then kill it mid-stream.
            pipeline.start(["converter"])
            target = done + 25
            wait_until(
                f"lead {target} (kill {kill + 1})",
                lambda t=target: reader.count(topics.LEADS) >= t,
                every=0.005,
            )
            pipeline.stop(["converter"], sig=signal.SIGKILL)
            done = reader.count(topics.LEADS)
            assert done < THREADS, "the converter finished before it could be killed mid-stream"
        pipeline.start(["converter"])
        wait_until(
            "every thread converted",
            lambda: (
                len({e.lead_id for e in reader.events(topics.LEADS, LeadCreated)}) >= THREADS
                and reader.lag("converter", topics.LETTERS_THREADED) == 0
            ),
            180,
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    leads = reader.events(topics.LEADS, LeadCreated)
    per_id = Counter(x.lead_id for x in leads)
    assert len(per_id) == THREADS
    assert max(per_id.values()) == 1, f"duplicated: {[i for i, n in per_id.items() if n > 1][:5]}"
    assert sorted(x.name for x in leads) == sorted(f"Question {n}" for n in range(THREADS))
    assert pipeline.log("converter").count("ledger:") >= KILLS  # each restart read what was done before
