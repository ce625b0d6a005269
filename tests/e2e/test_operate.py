"""What an operator sees and does with the workers running (separate processes, real Kafka, Dovecot and
SMTP): each worker's /metrics counting as letters flow and /readyz following the broker down and back;
a letter dead-lettered for a mailbox the matcher did not know, reprocessed once the mailbox is added."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from deploy.local.dovecot import Dovecot
from deploy.local.kafka import KafkaBroker
from deploy.local.mailbox import append_message, wait_for_messages
from deploy.local.pipeline import WORKERS, Pipeline, TopicReader, local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import CaseCreated, DeadLetter, ReplySent
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.fixtures_mail import MailUser
from tests.letters import letter

pytestmark = pytest.mark.e2e

ACK = {
    "id": "ack",
    "name": "Acknowledge",
    "template": {"subject": "Re: {{ letter.subject }}", "body": "Got it."},
}


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()
    except OSError as exc:  # not listening yet
        return 0, str(exc)


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def _samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, body = _get(port, "/metrics")
    assert status == 200, body
    found = {}
    for line in body.splitlines():
        hit = _SAMPLE.match(line)
        if hit:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', hit["labels"] or ""))
            found[(hit["name"], labels)] = float(hit["value"])
    return found


def _metric(pipeline: Pipeline, worker: str, name: str, **labels: str) -> float:
    return _samples(pipeline.metrics_ports[worker]).get((name, frozenset(labels.items())), 0.0)


def _wait(pipeline: Pipeline, what: str, probe: Any, timeout: float = 90.0) -> Any:
    try:
        return wait_until(what, probe, timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc


def test_metrics_count_the_letters_and_readiness_follows_the_broker_down_and_back(
    dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-e2e-operate-"))
    broker = KafkaBroker()
    broker.start()
    box = local_mailbox(
        "desk",
        desk.address,
        desk.password,
        dovecot.imap_port,
        smtp_relay.port,
        processing={"type": "case"},
        rules=[ACK],
    )
    pipeline = Pipeline(
        {"mailboxes": [box]},
        broker.bootstrap_servers,
        workdir,
        namespace=f"o{secrets.token_hex(4)}",
        env={"MAILROOM_LOG_FORMAT": "json"},
    )
    try:
        pipeline.start()
        for worker in WORKERS:
            _wait(
                pipeline,
                f"{worker} ready",
                lambda w=worker: _get(pipeline.metrics_ports[w], "/readyz")[0] == 200,
            )
            assert _get(pipeline.metrics_ports[worker], "/healthz") == (200, "ok\n")

        def send(count: int, tag: str) -> None:
            for n in range(count):
                raw, _ = letter(customer.address, desk.address, f"{tag} question {n}")
                append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, raw)

        send(3, "first")
        _wait(  # (converter and responder each take the matcher's outputs: either may finish first)
            pipeline,
            "3 replies and 3 cases counted",
            lambda: (
                _metric(pipeline, "responder", "mailroom_replies_total", outcome="sent") >= 3
                and _metric(pipeline, "converter", "mailroom_records_created_total", kind="case") >= 3
            ),
        )
        received = topics.LETTERS_RECEIVED.name
        assert _metric(pipeline, "ingest", "mailroom_messages_in_total", stage="ingest", topic="imap") == 3
        assert _metric(pipeline, "ingest", "mailroom_messages_out_total", stage="ingest", topic=received) == 3
        assert _metric(pipeline, "ingest", "mailroom_ingest_mailbox_state", mailbox="desk", state="ok") == 1
        assert _metric(pipeline, "ingest", "mailroom_ingest_mailboxes", state="ok") == 1
        assert (
            _metric(pipeline, "matcher", "mailroom_messages_in_total", stage="matcher", topic=received) == 3
        )
        assert _metric(pipeline, "matcher", "mailroom_decisions_total", reason="replied") == 3
        assert _metric(pipeline, "matcher", "mailroom_processing_seconds_count", stage="matcher") == 3
        assert _metric(pipeline, "converter", "mailroom_records_created_total", kind="case") == 3
        assert _metric(pipeline, "matcher", "mailroom_ledger_catchup_seconds_count", stage="matcher") >= 1
        _wait(
            pipeline,
            "the copies filed",
            lambda: _metric(pipeline, "responder", "mailroom_replies_total", outcome="filed") >= 3,
        )
        _wait(
            pipeline,
            "no lag left",
            lambda: (
                sum(
                    value
                    for (name, labels), value in _samples(pipeline.metrics_ports["matcher"]).items()
                    if name == "mailroom_consumer_lag"
                )
                == 0
                and any(
                    name == "mailroom_consumer_lag" for name, _ in _samples(pipeline.metrics_ports["matcher"])
                )
            ),
        )

        # JSON logs: the matcher's line about each letter says where it came from and which letter it is.
        lines = [json.loads(line) for line in pipeline.log("matcher").splitlines() if line.startswith("{")]
        about = [line for line in lines if line["logger"] == "matcher.app" and "message_id" in line]
        assert len(about) == 3, pipeline.log("matcher")[-2000:]
        for line in about:
            assert line["topic"].endswith(received) and line["mailbox"] == "desk"
            assert isinstance(line["partition"], int) and isinstance(line["offset"], int)
            assert line["message_id"] in line["message"] and line["level"] == "INFO"

        broker.stop(remove=False)
        for worker in WORKERS:
            _status, body = _wait(
                pipeline,
                f"{worker} not ready while the broker is down",
                lambda w=worker: (answer := _get(pipeline.metrics_ports[w], "/readyz"))[0] == 503 and answer,
                30,
            )
            assert "broker: no broker answers" in body, (worker, body)
            assert _get(pipeline.metrics_ports[worker], "/healthz")[0] == 200  # alive: not to be restarted
            assert _metric(pipeline, worker, "mailroom_ready", stage=worker) == 0
        broker.start()
        for worker in WORKERS:
            _wait(
                pipeline,
                f"{worker} ready again",
                lambda w=worker: _get(pipeline.metrics_ports[w], "/readyz")[0] == 200,
                60,
            )
        send(2, "after")
        # (The customer has had the replies a sender gets in a while: these two make cases, no reply.)
        _wait(
            pipeline,
            "5 cases counted after the broker came back",
            lambda: _metric(pipeline, "converter", "mailroom_records_created_total", kind="case") >= 5,
            120,
        )
        assert _metric(pipeline, "matcher", "mailroom_decisions_total", reason="rate limited") == 2
        assert _metric(pipeline, "ingest", "mailroom_messages_out_total", stage="ingest", topic=received) == 5
        assert pipeline.running() == dict.fromkeys(WORKERS, True)
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc
    finally:
        pipeline.stop()
        broker.stop()
        if not os.environ.get("MAILROOM_E2E_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


def _box(user: MailUser, box_id: str, dovecot: Dovecot, relay: SmtpRelay) -> dict[str, Any]:
    return local_mailbox(
        box_id,
        user.address,
        user.password,
        dovecot.imap_port,
        relay.port,
        processing={"type": "case"},
        rules=[ACK],
    )


def test_a_letter_dead_lettered_for_an_unknown_mailbox_is_reprocessed_once_after_the_mailbox_is_added(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    front, late, customer = (mail_user_factory(n) for n in ("front", "late", "customer"))
    known = {"mailboxes": [_box(front, "front", dovecot, smtp_relay)]}
    both = {"mailboxes": [*known["mailboxes"], _box(late, "late", dovecot, smtp_relay)]}
    pipeline, reader = pipeline_factory(known)
    pipeline.start(["matcher", "converter", "responder"])
    # An ingest that reads a file naming a mailbox the configuration topic does not have yet (as while an
    # administrator's change is still on its way): the matcher cannot place its letters.
    pipeline.write_config(both)
    pipeline.env_override("MAILROOM_CONFIG_SOURCE", "file")
    pipeline.start(["ingest"])
    raw, message_id = letter(customer.address, late.address, "my order")
    append_message(dovecot.host, dovecot.imap_port, late.address, late.password, raw)

    dead = _wait(
        pipeline,
        "the dead letter",
        lambda: [d for d in reader.events(topics.DEAD_LETTERS, DeadLetter) if d.mailbox_id == "late"],
    )
    assert len(dead) == 1 and dead[0].stage == "matcher" and "not in the configuration" in dead[0].reason
    listed = json.loads(pipeline.cli("dead-letters", "list", "--json").stdout)
    assert [row["id"] for row in listed] == [dead[0].event_id]

    pipeline.env_override("MAILROOM_CONFIG_SOURCE", "topic")
    pipeline.apply(both)
    # The matcher follows the topic: wait until it knows the mailbox (a letter to it is decided).
    probe, probe_id = letter(customer.address, late.address, "are you there")
    append_message(dovecot.host, dovecot.imap_port, late.address, late.password, probe)
    _wait(pipeline, "the matcher knows the mailbox", lambda: _cases(reader, probe_id))

    done = json.loads(pipeline.cli("dead-letters", "reprocess", dead[0].event_id, "--json").stdout)
    assert done[dead[0].event_id].startswith("reprocessed")
    _wait(pipeline, "the case of the reprocessed letter", lambda: _cases(reader, message_id))
    _wait(pipeline, "its reply", lambda: _replies(reader, "late") >= 2)
    wait_for_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password, 2, timeout=60)

    handled = reader.count(topics.LETTERS_DECIDED)
    again = json.loads(pipeline.cli("dead-letters", "reprocess", dead[0].event_id, "--json").stdout)
    assert again[dead[0].event_id].startswith("reprocessed")
    # Handled again by every stage (the matcher keeps its decision, the reply asked for then is asked
    # again by the same id): nothing more is made.
    _wait(pipeline, "the matcher handled it again", lambda: reader.count(topics.LETTERS_DECIDED) > handled)
    _wait(
        pipeline,
        "every stage done with it",
        lambda: (
            reader.lag("converter", topics.LETTERS_THREADED) == 0
            and reader.lag("responder", topics.REPLIES_REQUESTED) == 0
        ),
    )
    assert len(_cases(reader, message_id)) == 1
    assert _replies(reader, "late") == 2
    time.sleep(2)  # a second reply would be on its way to the inbox by now
    assert (
        len(wait_for_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password, 2)) == 2
    )


def _cases(reader: TopicReader, message_id: str) -> list[CaseCreated]:
    return [c for c in reader.events(topics.CASES, CaseCreated) if c.message_id == message_id]


def _replies(reader: TopicReader, mailbox_id: str) -> int:
    return len([s for s in reader.events(topics.REPLY_OUTCOMES, ReplySent) if s.mailbox_id == mailbox_id])
