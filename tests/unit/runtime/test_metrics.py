"""The metrics a worker keeps, and what /metrics, /healthz and /readyz answer (over real HTTP)."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from deploy.local.ports import free_port
from runtime import logs, metrics
from schemas import topics
from schemas.events import (
    CaseCreated,
    DeadLetter,
    LetterDecided,
    MailboxHealth,
    ReplySent,
    RuleOutcome,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _value(name: str, **labels: str) -> float:
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def _decided(**fields: object) -> LetterDecided:
    values: dict[str, object] = {
        "event_id": "d1",
        "occurred_at": NOW,
        "mailbox_id": "support",
        "letter_id": "l1",
        "message_id": "<m1@x>",
    }
    values.update(fields)
    return LetterDecided.model_validate(values)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"reply_ids": ("r1",)}, "replied"),
        ({"skipped_because": "x-autoreply"}, "skipped: x-autoreply"),
        ({"limited": ("ack: 1 reply a day",)}, "rate limited"),
        (
            {"rules": (RuleOutcome(rule_id="a", rule_name="A", matched=False, failed_condition=0),)},
            "no rule matched",
        ),
        ({"rules": (RuleOutcome(rule_id="a", rule_name="A", matched=True),)}, "matched, no reply"),
        ({"reply_ids": ("r1",), "kept_from": 3}, "kept from before"),
    ],
)
def test_a_decision_reason_has_few_values(fields: dict[str, object], reason: str) -> None:
    assert metrics.decision_reason(_decided(**fields)) == reason


def test_acknowledged_events_are_counted_by_what_they_are() -> None:
    before_out = _value("mailroom_messages_out_total", stage="matcher", topic=topics.LETTERS_DECIDED.name)
    before_replied = _value("mailroom_decisions_total", reason="replied")
    metrics.published("matcher", topics.LETTERS_DECIDED, "support", _decided(reply_ids=("r1",)))
    assert _value("mailroom_messages_out_total", stage="matcher", topic=topics.LETTERS_DECIDED.name) == (
        before_out + 1
    )
    assert _value("mailroom_decisions_total", reason="replied") == before_replied + 1

    before = _value("mailroom_replies_total", outcome="sent")
    sent = ReplySent(
        event_id="s1",
        occurred_at=NOW,
        reply_id="r1",
        mailbox_id="support",
        message_id="reply-r1@acme.example",
        to=("ann@example.com",),
    )
    metrics.published("responder", topics.REPLY_OUTCOMES, "r1", sent)
    assert _value("mailroom_replies_total", outcome="sent") == before + 1

    dead = DeadLetter.of("matcher", ValueError("bad"), "t", b"raw", "event", mailbox_id="support")
    before = _value("mailroom_dead_letters_total", stage="matcher", reason="ValueError")
    metrics.published("matcher", topics.DEAD_LETTERS, "support", dead)
    assert _value("mailroom_dead_letters_total", stage="matcher", reason="ValueError") == before + 1


def test_records_are_counted_by_kind() -> None:
    case = CaseCreated.model_validate(
        {
            "event_id": "case-1",
            "occurred_at": NOW,
            "case_id": "case-1",
            "organization": "acme",
            "mailbox_id": "support",
            "mailbox_email": "support@acme.example",
            "subject": "Help",
            "description": "Help me",
            "reporter_email": "ann@example.com",
            "letter_id": "l1",
            "message_id": "<m1@x>",
            "thread_id": "t1",
        }
    )
    before = _value("mailroom_records_created_total", kind="case")
    metrics.published("converter", topics.CASES, case.event_id, case)
    assert _value("mailroom_records_created_total", kind="case") == before + 1


def _health(mailbox_id: str, state: str) -> MailboxHealth:
    return MailboxHealth.model_validate(
        {
            "event_id": f"h-{mailbox_id}-{state}",
            "occurred_at": NOW,
            "mailbox_id": mailbox_id,
            "organization": "acme",
            "state": state,
            "since": NOW,
            "owner": "host:1",
        }
    )


def test_each_mailbox_shows_its_present_state_only() -> None:
    metrics.published("ingest", topics.INGEST_HEALTH, "m-a", _health("m-a", "connecting"))
    metrics.published("ingest", topics.INGEST_HEALTH, "m-b", _health("m-b", "ok"))
    metrics.published("ingest", topics.INGEST_HEALTH, "m-a", _health("m-a", "failing"))
    assert _value("mailroom_ingest_mailbox_state", mailbox="m-a", state="failing") == 1
    assert (
        metrics.REGISTRY.get_sample_value(
            "mailroom_ingest_mailbox_state", {"mailbox": "m-a", "state": "connecting"}
        )
        is None
    )
    failing = _value("mailroom_ingest_mailboxes", state="failing")
    # Handed on (stopped) and removed (a tombstone): no longer this process's.
    metrics.published("ingest", topics.INGEST_HEALTH, "m-a", _health("m-a", "stopped"))
    metrics.published("ingest", topics.INGEST_HEALTH, "m-b", None)
    assert _value("mailroom_ingest_mailboxes", state="failing") == failing - 1
    for box, state in (("m-a", "failing"), ("m-a", "stopped"), ("m-b", "ok")):
        assert (
            metrics.REGISTRY.get_sample_value(
                "mailroom_ingest_mailbox_state", {"mailbox": box, "state": state}
            )
            is None
        )


def test_readiness_lists_each_failing_check_and_liveness_the_stalled_loop() -> None:
    health = metrics.Health("matcher", stall_seconds=0.05)
    answers: dict[str, str | None] = {"broker": None}
    health.check("broker", lambda: answers["broker"])
    assert health.ready() == []
    assert _value("mailroom_ready", stage="matcher") == 1
    answers["broker"] = "no broker answers"
    assert health.ready() == ["broker: no broker answers"]
    assert _value("mailroom_ready", stage="matcher") == 0
    answers["broker"] = None
    time.sleep(0.1)
    assert health.alive() is not None and "has not gone round" in health.alive()  # type: ignore[operator]
    health.busy(True)  # a long catch-up is alive, not ready
    assert health.alive() is None
    assert health.ready()[0].startswith("catching up")
    health.busy(False)
    assert health.ready() == []


def test_a_check_that_breaks_fails_readiness() -> None:
    health = metrics.Health("converter")

    def broken() -> str | None:
        raise RuntimeError("boom")

    health.check("configuration", broken)
    assert health.ready() == ["configuration: RuntimeError: boom"]


def test_the_broker_probe_answers_from_a_real_socket() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert metrics.BrokerProbe(f"127.0.0.1:{free_port()},127.0.0.1:{port}", every=0)() is None
    closed = metrics.BrokerProbe(f"127.0.0.1:{port}", every=0)()
    assert closed is not None and closed.startswith("no broker answers")


@pytest.fixture
def endpoint() -> Iterator[tuple[int, metrics.Health, dict[str, str | None]]]:
    health = metrics.Health("responder")
    answers: dict[str, str | None] = {"broker": None}
    health.check("broker", lambda: answers["broker"])
    port = free_port()
    server = metrics.serve(health, metrics.MetricsSettings(host="127.0.0.1", port=port))
    assert server is not None
    yield port, health, answers
    server.shutdown()
    server.server_close()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_the_endpoints_answer_over_http(endpoint: tuple[int, metrics.Health, dict[str, str | None]]) -> None:
    port, _health, answers = endpoint
    status, body = _get(port, "/metrics")
    assert status == 200 and "# TYPE mailroom_messages_in_total counter" in body
    assert _get(port, "/healthz") == (200, "ok\n")
    assert _get(port, "/readyz") == (200, "ready\n")
    answers["broker"] = "no broker answers"
    assert _get(port, "/readyz") == (503, "broker: no broker answers\n")
    assert _get(port, "/nothing")[0] == 404


def test_a_taken_port_leaves_the_worker_running_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR):
            assert (
                metrics.serve(metrics.Health("x"), metrics.MetricsSettings(host="127.0.0.1", port=port))
                is None
            )
    assert "MAILROOM_METRICS_PORT" in caplog.text


def test_no_port_serves_nothing() -> None:
    assert metrics.serve(metrics.Health("x"), metrics.MetricsSettings(port=0)) is None


def test_json_logs_carry_the_message_under_way() -> None:
    formatter = logs.JsonFormatter()
    record = logging.LogRecord("matcher.app", logging.INFO, __file__, 1, "letter %s", ("<m1@x>",), None)
    with logs.context(topic="t.letters", partition=1, offset=42, mailbox="support"):
        logs.note(message_id="<m1@x>")
        line = json.loads(formatter.format(record))
    assert line["message"] == "letter <m1@x>"
    assert (line["topic"], line["partition"], line["offset"], line["mailbox"]) == (
        "t.letters",
        1,
        42,
        "support",
    )
    assert line["message_id"] == "<m1@x>" and line["level"] == "INFO" and line["logger"] == "matcher.app"
    # Outside the block, the context is gone.
    assert "message_id" not in json.loads(formatter.format(record))
