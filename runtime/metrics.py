"""What a worker tells Prometheus and Kubernetes: the metrics, and `/metrics`, `/healthz`, `/readyz` on
MAILROOM_METRICS_PORT (default 9108; 0 serves nothing), bound to MAILROOM_METRICS_HOST.

Counters follow what reached the broker (an output is counted once it is acknowledged), so a message
handled again after a crash may be counted twice: metrics are at least once, like the stream.

- `/healthz` (liveness): the process's loop has gone round lately. A worker whose loop is stuck (or
  that is still catching up its ledger for longer than `stall_seconds`) is restarted by its orchestrator.
- `/readyz` (readiness): every check the worker registered passes: the broker answers, the configuration
  is loaded, the loop runs. The body says which check failed and why.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import topics
from schemas.events import (
    CaseCreated,
    DeadLetter,
    Event,
    LeadCreated,
    LetterDecided,
    MailboxHealth,
    ReplyDeferred,
    ReplyFailed,
    ReplyFiled,
    ReplyFilingFailed,
    ReplySent,
)

__all__ = [
    "REGISTRY",
    "BrokerProbe",
    "Health",
    "MetricsSettings",
    "decision_reason",
    "published",
    "serve",
]

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
"""This process's metrics (not prometheus_client's global registry: tests make several in one process)."""

MESSAGES_IN = Counter(
    "mailroom_messages_in",
    "Messages a stage took from its input topic",
    ["stage", "topic"],
    registry=REGISTRY,
)
MESSAGES_OUT = Counter(
    "mailroom_messages_out",
    "Events a stage published that the broker acknowledged",
    ["stage", "topic"],
    registry=REGISTRY,
)
DECISIONS = Counter(
    "mailroom_decisions", "The matcher's decisions about replying, by reason", ["reason"], registry=REGISTRY
)
REPLIES = Counter(
    "mailroom_replies",
    "Replies by outcome: sent, failed, deferred, filed, filing_failed",
    ["outcome"],
    registry=REGISTRY,
)
RECORDS = Counter("mailroom_records_created", "Leads and cases made", ["kind"], registry=REGISTRY)
DEAD_LETTERS = Counter(
    "mailroom_dead_letters",
    "Messages that could not be processed, by stage and reason (the error's kind)",
    ["stage", "reason"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "mailroom_consumer_lag",
    "Messages of an owned partition not yet handled and committed",
    ["stage", "topic", "partition"],
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "mailroom_processing_seconds",
    "Time to handle one message (its outputs queued, not yet acknowledged)",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
LEDGER_CATCHUP_SECONDS = Histogram(
    "mailroom_ledger_catchup_seconds",
    "Time to read a stream worker's ledger back after it got partitions",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
INGEST_MAILBOXES = Gauge(
    "mailroom_ingest_mailboxes", "Mailboxes this ingest process reads, by state", ["state"], registry=REGISTRY
)
INGEST_MAILBOX_STATE = Gauge(
    "mailroom_ingest_mailbox_state",
    "1 for each mailbox this ingest process reads, in its present state",
    ["mailbox", "state"],
    registry=REGISTRY,
)
READY = Gauge("mailroom_ready", "1 while /readyz answers 200", ["stage"], registry=REGISTRY)

_INGEST_STATES = ("ok", "connecting", "retrying", "failing", "stopped")
_REPLY_OUTCOMES: dict[type[Event], str] = {
    ReplySent: "sent",
    ReplyFailed: "failed",
    ReplyDeferred: "deferred",
    ReplyFiled: "filed",
    ReplyFilingFailed: "filing_failed",
}


class MetricsSettings(BaseSettings):
    """MAILROOM_METRICS_HOST, MAILROOM_METRICS_PORT, MAILROOM_METRICS_STALL_SECONDS."""

    model_config = SettingsConfigDict(env_prefix="MAILROOM_METRICS_", frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(9108, ge=0, le=65535)
    """0: no endpoint (metrics are still counted)."""
    stall_seconds: float = Field(120.0, gt=0)
    """`/healthz` fails when the worker's loop has not gone round for this long."""


def decision_reason(decided: LetterDecided) -> str:
    """A decision's reason as a label with few values."""
    if decided.kept_from is not None:
        return "kept from before"
    if decided.skipped_because:
        return f"skipped: {decided.skipped_because}"
    if decided.limited:
        return "rate limited"
    if decided.reply_ids:
        return "replied"
    if any(outcome.matched for outcome in decided.rules):
        return "matched, no reply"
    return "no rule matched"


_ingest_states: dict[str, str] = {}
_ingest_lock = threading.Lock()


def published(stage: str, spec: topics.TopicSpec, key: str, event: Event | None) -> None:
    """Counts an event the broker acknowledged (None: a tombstone)."""
    MESSAGES_OUT.labels(stage, spec.name).inc()
    if event is None:
        if spec is topics.INGEST_HEALTH:
            _ingest_state(key, None)
        return
    if isinstance(event, LetterDecided):
        DECISIONS.labels(decision_reason(event)).inc()
    elif isinstance(event, DeadLetter):
        DEAD_LETTERS.labels(event.stage, event.error_type).inc()
    elif isinstance(event, LeadCreated | CaseCreated):
        RECORDS.labels("lead" if isinstance(event, LeadCreated) else "case").inc()
    elif isinstance(event, MailboxHealth):
        _ingest_state(event.mailbox_id, None if event.state == "stopped" else event.state)
    else:
        outcome = _REPLY_OUTCOMES.get(type(event))
        if outcome is not None:
            REPLIES.labels(outcome).inc()


def _ingest_state(mailbox_id: str, state: str | None) -> None:
    """Keeps the per-mailbox and per-state gauges of the mailboxes this process reads."""
    with _ingest_lock:
        before = _ingest_states.pop(mailbox_id, None)
        if before is not None:
            INGEST_MAILBOX_STATE.remove(mailbox_id, before)
        if state is not None:
            _ingest_states[mailbox_id] = state
            INGEST_MAILBOX_STATE.labels(mailbox_id, state).set(1)
        counts = dict.fromkeys(_INGEST_STATES, 0)
        for now in _ingest_states.values():
            counts[now] = counts.get(now, 0) + 1
        for name, count in counts.items():
            INGEST_MAILBOXES.labels(name).set(count)


Check = Callable[[], str | None]
"""A readiness check: None when it passes, else why not."""


class Health:
    """A worker's liveness (its loop's last round) and readiness (its checks)."""

    def __init__(self, stage: str, stall_seconds: float = 120.0) -> None:
        self.stage = stage
        self._stall = stall_seconds
        self._beat = time.monotonic()
        self._busy_since: float | None = None
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()

    def beat(self) -> None:
        """The worker's loop went round."""
        self._beat = time.monotonic()

    def busy(self, busy: bool) -> None:
        """Long work that stops the loop on purpose (a ledger read back): not ready meanwhile, and alive
        for as long as the work takes."""
        self._busy_since = time.monotonic() if busy else None
        if not busy:
            self.beat()

    def check(self, name: str, check: Check) -> None:
        with self._lock:
            self._checks[name] = check

    def alive(self) -> str | None:
        if self._busy_since is not None:
            return None
        quiet = time.monotonic() - self._beat
        if quiet > self._stall:
            return f"the {self.stage} loop has not gone round for {quiet:.0f} s"
        return None

    def ready(self) -> list[str]:
        """Why the worker is not ready (empty: it is)."""
        with self._lock:
            checks = list(self._checks.items())
        problems = []
        if self._busy_since is not None:
            problems.append(f"catching up for {time.monotonic() - self._busy_since:.0f} s")
        stalled = self.alive()
        if stalled:
            problems.append(stalled)
        for name, check in checks:
            try:
                problem = check()
            except Exception as exc:  # a check that breaks says so instead of passing
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                problems.append(f"{name}: {problem}")
        READY.labels(self.stage).set(0 if problems else 1)
        return problems


class BrokerProbe:
    """Whether a broker of the bootstrap list accepts a connection, asked at most every `every` seconds
    (the answer is kept meanwhile): readiness must not wait on a dead broker for long."""

    def __init__(self, bootstrap_servers: str, every: float = 2.0, timeout: float = 1.0) -> None:
        self._servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
        self._every = every
        self._timeout = timeout
        self._asked = 0.0
        self._answer: str | None = "not asked yet"
        self._lock = threading.Lock()

    def __call__(self) -> str | None:
        with self._lock:
            if time.monotonic() - self._asked >= self._every:
                self._answer = self._ask()
                self._asked = time.monotonic()
            return self._answer

    def _ask(self) -> str | None:
        errors = []
        for server in self._servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]") or "localhost", int(port)), self._timeout):
                    return None
            except (OSError, ValueError) as exc:
                errors.append(f"{server}: {exc}")
        return "no broker answers (" + "; ".join(errors) + ")"


class _Handler(BaseHTTPRequestHandler):
    health: Health

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            problem = self.health.alive()
            self._answer(503 if problem else 200, (problem or "ok").encode() + b"\n")
        elif path == "/readyz":
            problems = self.health.ready()
            body = ("\n".join(problems) if problems else "ready").encode() + b"\n"
            self._answer(503 if problems else 200, body)
        else:
            self._answer(404, b"/metrics, /healthz or /readyz\n")

    def _answer(self, status: int, body: bytes, kind: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: not logged
        return None


def serve(health: Health, settings: MetricsSettings) -> ThreadingHTTPServer | None:
    """Serves the endpoints on a daemon thread; None when the port is 0."""
    if not settings.port:
        return None
    handler = type("Handler", (_Handler,), {"health": health})
    try:
        server = ThreadingHTTPServer((settings.host, settings.port), handler)
    except OSError as exc:  # the worker still works; its probes fail, which says where to look
        logger.error(
            "%s: cannot serve /metrics on %s:%d: %s (MAILROOM_METRICS_PORT)",
            health.stage,
            settings.host,
            settings.port,
            exc,
        )
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    logger.info("%s: /metrics, /healthz, /readyz on %s:%d", health.stage, settings.host, settings.port)
    return server
