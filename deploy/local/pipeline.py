"""Runs mailroom's workers as separate processes (as in production) against given servers, and reads topics.

Used by the demo and the end-to-end tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from deploy.local.ports import free_port
from runtime.settings import KafkaSettings
from schemas import topics
from schemas.events import Event, event_type_of, parse_event

__all__ = ["WORKERS", "Pipeline", "TopicReader", "local_mailbox", "wait_until"]

WORKERS = ("ingest", "matcher", "converter", "responder")
ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")
E = TypeVar("E", bound=Event)


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 90.0, every: float = 0.5) -> T:
    """Calls `probe` until it returns something truthy; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def local_mailbox(
    mailbox_id: str,
    email: str,
    password: str,
    imap_port: int,
    smtp_port: int,
    processing: dict[str, Any] | None = None,
    rules: list[dict[str, Any]] | None = None,
    read_from: str | None = "now",
    **extra: Any,
) -> dict[str, Any]:
    """A mailbox's configuration for servers on 127.0.0.1 without TLS (test and demo servers only).

    `read_from`: letters that arrive from when on make events; "now" (the moment this configuration is
    made, as for a mailbox an administrator adds), a time, or None for ingest's default (from when the
    mailbox was added). Rules without `created_at` are dated `read_from` too (else `config apply` dates
    them when it publishes them): a test's letters put in after the configuration was made are answered."""
    if read_from == "now":
        read_from = datetime.now(UTC).replace(microsecond=0).isoformat()
    if read_from is not None:
        rules = [{"created_at": read_from, **rule} for rule in rules or []]
    return {
        "id": mailbox_id,
        "organization": "acme",
        "label": f"Acme {mailbox_id.title()}",
        "email": email,
        "imap": {
            "host": "127.0.0.1",
            "port": imap_port,
            "ssl": False,
            "username": email,
            "password": password,
        },
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
        "processing": processing or {"type": "none"},
        "rules": rules or [],
        **({} if read_from is None else {"read_from": read_from}),
        **extra,
    }


class Pipeline:
    """The workers of one pipeline (one topic namespace), each `python -m mailroom <worker>` in its own
    process group; logs under `workdir`."""

    def __init__(
        self,
        config: dict[str, Any],
        bootstrap_servers: str,
        workdir: Path,
        namespace: str = "",
        partitions: int = 2,
        poll_seconds: float = 0.5,
        env: dict[str, str] | None = None,
        config_source: str = "topic",
    ) -> None:
        """`config_source`: `topic` (the file is applied to the configuration topic with `mailroom
        config apply` before the workers start, as in production) or `file` (the workers read the file)."""
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "mailroom.yaml"
        self._config_source = config_source
        self.config_path.write_text(yaml.safe_dump(self._referenced(config), sort_keys=False))
        self.kafka = KafkaSettings(
            bootstrap_servers=bootstrap_servers, partitions=partitions, namespace=namespace
        )
        self._poll_seconds = poll_seconds
        self._extra_env = dict(env or {})
        self._applied = False
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.metrics_ports: dict[str, int] = {}
        """Where each process (by name) serves /metrics, /healthz and /readyz on 127.0.0.1."""

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILROOM_")}
        env.update(
            MAILROOM_CONFIG=str(self.config_path),
            MAILROOM_DATA_DIR=str(self.workdir / "data"),
            MAILROOM_POLL_SECONDS=str(self._poll_seconds),
            MAILROOM_KAFKA_BOOTSTRAP_SERVERS=self.kafka.bootstrap_servers,
            MAILROOM_KAFKA_PARTITIONS=str(self.kafka.partitions),
            MAILROOM_KAFKA_NAMESPACE=self.kafka.namespace,
            # A killed worker's partitions move on after this long (Kafka's minimum): tests kill workers.
            MAILROOM_KAFKA_SESSION_TIMEOUT_SECONDS="6",
            PYTHONPATH=str(ROOT),
        )
        env.update(self._extra_env)
        return env

    def env_override(self, name: str, value: str) -> None:
        """One more MAILROOM_* setting for every process started from now on."""
        self._extra_env[name] = value

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs `mailroom ARGS` to the end, e.g. `topics` or `replay`."""
        done = subprocess.run(
            [sys.executable, "-m", "mailroom", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"mailroom {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def log_path(self, worker: str) -> Path:
        return self.workdir / f"{worker}.log"

    def log(self, worker: str) -> str:
        path = self.log_path(worker)
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, workers: Iterable[str] = WORKERS, copies: int = 1) -> None:
        """Starts each worker in `copies` processes (the copies of a stream worker share its consumer
        group); a copy after the first is named `worker.2`, `worker.3`, ..."""
        self.cli("topics")
        if self._config_source == "topic" and not self._applied:
            self.cli("config", "apply", "-f", str(self.config_path), "--as", "pipeline")
            self._applied = True
        for worker in workers:
            for copy in range(1, copies + 1):
                name = worker if copy == 1 else f"{worker}.{copy}"
                self.metrics_ports[name] = free_port()
                env = {
                    **self.env(),
                    "MAILROOM_METRICS_HOST": "127.0.0.1",
                    "MAILROOM_METRICS_PORT": str(self.metrics_ports[name]),
                }
                with self.log_path(name).open("ab") as log:
                    self._procs[name] = subprocess.Popen(
                        [sys.executable, "-m", "mailroom", worker],
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )

    def stop(
        self, workers: Iterable[str] | None = None, sig: int = signal.SIGTERM, timeout: float = 30.0
    ) -> None:
        """Stops workers (all by default, every copy of each named one): SIGTERM and a wait, then SIGKILL;
        SIGKILL at once if asked."""
        wanted = None if workers is None else set(workers)
        names = [name for name in self._procs if wanted is None or name.partition(".")[0] in wanted]
        for name in names:
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, sig)
        for name in names:
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signals one process by its name (`ingest`, `ingest.2`, ...) and waits for it to end."""
        proc = self._procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(timeout=60)

    def pid(self, name: str) -> int:
        return self._procs[name].pid

    def _referenced(self, config: dict[str, Any]) -> dict[str, Any]:
        """For the configuration topic, passwords given as values become files the configuration refers
        to (`{file: PATH}`, as a mounted secret): secrets never travel on the topic."""
        if self._config_source != "topic":
            return config
        secrets_dir = self.workdir / "secrets"
        secrets_dir.mkdir(mode=0o700, exist_ok=True)
        boxes = []
        for box in config.get("mailboxes", []):
            box = dict(box)
            for part in ("imap", "smtp"):
                settings = dict(box.get(part) or {})
                if isinstance(settings.get("password"), str):
                    path = secrets_dir / f"{box['id']}-{part}"
                    path.write_text(settings["password"])
                    path.chmod(0o600)
                    settings["password"] = {"file": str(path)}
                box[part] = settings
            boxes.append(box)
        return {**config, "mailboxes": boxes}

    def write_config(self, config: dict[str, Any]) -> None:
        """Replaces the configuration file (atomically, as an editor or a deployment would)."""
        staged = self.config_path.with_suffix(".new")
        staged.write_text(yaml.safe_dump(self._referenced(config), sort_keys=False))
        staged.replace(self.config_path)

    def apply(self, config: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
        """Writes the configuration file and applies it to the configuration topic (`mailroom config
        apply -f`, with `args` such as `--dry-run`); the workers follow it within seconds."""
        self.write_config(config)
        return self.cli("config", "apply", "-f", str(self.config_path), "--as", "pipeline", *args)

    def running(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self._procs.items()}

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TopicReader:
    """Reads whole topics of one namespace from the start, outside any consumer group."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers, group_id=None, enable_auto_commit=False
        )

    def records(self, spec: topics.TopicSpec) -> list[Any]:
        name = self.kafka.topic(spec)
        tps = [TopicPartition(name, p) for p in sorted(self._consumer.partitions_for_topic(name) or set())]
        if not tps:
            return []
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)
        ends = self._consumer.end_offsets(tps)
        found: list[Any] = []
        deadline = time.monotonic() + 30
        while any(self._consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in self._consumer.poll(timeout_ms=200).values():
                found.extend(batch)
        return found

    def count(self, spec: topics.TopicSpec) -> int:
        """How many messages the topic holds (cheap: offsets only; right for topics without deletions)."""
        name = self.kafka.topic(spec)
        tps = [TopicPartition(name, p) for p in sorted(self._consumer.partitions_for_topic(name) or set())]
        ends, starts = self._consumer.end_offsets(tps), self._consumer.beginning_offsets(tps)
        return sum(ends[tp] - starts[tp] for tp in tps)

    def events(self, spec: topics.TopicSpec, model: type[E]) -> list[E]:
        """The topic's events of type `model` (a topic may carry several types)."""
        return [
            parse_event(model, r.value)
            for r in self.records(spec)
            if r.value is not None and event_type_of(r.value) == model.__name__
        ]

    def lag(self, worker: str, spec: topics.TopicSpec) -> int:
        """How many messages of `spec` the worker's consumer group has not committed yet."""
        name = self.kafka.topic(spec)
        tps = [TopicPartition(name, p) for p in sorted(self._consumer.partitions_for_topic(name) or set())]
        ends = self._consumer.end_offsets(tps)
        admin = KafkaAdminClient(bootstrap_servers=self.kafka.bootstrap_servers)
        try:
            committed = admin.list_group_offsets({self.kafka.group(worker): tps}).get(
                self.kafka.group(worker), {}
            )
        finally:
            admin.close()
        return sum(ends[tp] - max(getattr(committed.get(tp), "offset", 0), 0) for tp in tps)

    def close(self) -> None:
        self._consumer.close()
