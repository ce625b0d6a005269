"""Benchmark: how soon ingest publishes a letter after it lands in a mailbox, with few and many mailboxes.

    python bench/ingest.py [--mailboxes 1 200] [--letters 500] [--rate 50] [--faulty]

Starts Kafka (or uses KAFKA_BOOTSTRAP_SERVERS) and Dovecot from deploy/local, and `mailroom ingest` as a
separate process with default settings (IDLE where offered; polling every 5 s otherwise). For each
mailbox count it waits until every mailbox is read, then APPENDs --letters letters at --rate per second,
round-robin over the mailboxes, and prints APPEND (the server's OK) -> LetterReceived seen by a consumer,
p50/p90/p99 and the largest. --faulty adds a mailbox whose login is refused and one whose server never
answers, to show that they do not slow the others.

Figures only, nothing asserted: the machine is shared and noisy, so run it more than once and read medians.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imapclient import IMAPClient
from kafka import KafkaConsumer, TopicPartition

from deploy.local.dovecot import Dovecot
from deploy.local.kafka import KafkaBroker
from deploy.local.pipeline import Pipeline, TopicReader, local_mailbox, wait_until
from schemas import topics
from schemas.events import MailboxHealth, parse_event

PASSWORD = "bench-password"
UNUSED_SMTP_PORT = 2525


def _letter(to: str, n: int, tag: str) -> tuple[bytes, str]:
    mid = f"{tag}-{n}-{secrets.token_hex(4)}@customer.test"
    raw = (
        f"From: customer{n % 7}@customer.test\r\nTo: {to}\r\nSubject: Question {n}\r\n"
        f"Message-ID: <{mid}>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n"
        + "Where is my order? " * 100
        + "\r\n"
    ).encode()
    return raw, mid


class Arrivals(threading.Thread):
    """Tails the LetterReceived topic and notes when each Message-ID shows up."""

    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__(daemon=True)
        name = pipeline.kafka.topic(topics.LETTERS_RECEIVED)
        self._consumer = KafkaConsumer(
            bootstrap_servers=pipeline.kafka.bootstrap_servers, group_id=None, fetch_max_wait_ms=10
        )
        parts = [TopicPartition(name, p) for p in sorted(self._consumer.partitions_for_topic(name) or ())]
        self._consumer.assign(parts)
        self._consumer.seek_to_end(*parts)
        for tp in parts:
            self._consumer.position(tp)
        self.seen: dict[str, float] = {}
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            for batch in self._consumer.poll(timeout_ms=50).values():
                now = time.time()
                for record in batch:
                    headers = json.loads(record.value)["headers"]
                    self.seen.setdefault(headers["message_id"], now)

    def close(self) -> None:
        self._done.set()
        self.join()
        self._consumer.close()


def _health(reader: TopicReader) -> dict[str, MailboxHealth]:
    found: dict[str, MailboxHealth] = {}
    for record in reader.records(topics.INGEST_HEALTH):
        if record.value is not None:
            found[record.key.decode()] = parse_event(MailboxHealth, record.value)
    return found


def run(
    kafka: str, dovecot: Dovecot, workdir: Path, boxes: int, letters: int, rate: float, faulty: bool
) -> None:
    tag = secrets.token_hex(3)
    addresses = [f"desk{i}-{tag}@bench.test" for i in range(boxes)]
    for address in addresses:
        dovecot.add_user(address, PASSWORD)
    config: list[dict[str, Any]] = [
        local_mailbox(f"desk{i}", a, PASSWORD, dovecot.imap_port, UNUSED_SMTP_PORT)
        for i, a in enumerate(addresses)
    ]
    silent = socket.create_server(("127.0.0.1", 0))
    silent.listen(10)
    if faulty:
        locked = f"locked-{tag}@bench.test"
        dovecot.add_user(locked, PASSWORD)
        config.append(local_mailbox("locked", locked, "wrong", dovecot.imap_port, UNUSED_SMTP_PORT))
        hung = local_mailbox(
            "hung", f"hung-{tag}@bench.test", PASSWORD, silent.getsockname()[1], UNUSED_SMTP_PORT
        )
        config.append(hung)
    pipeline = Pipeline(
        {"mailboxes": config},
        kafka,
        workdir / f"i{tag}",
        namespace=f"benchingest{tag}",
        poll_seconds=5.0,  # the default; used only where a server offers no IDLE
        env={"MAILROOM_LOG_LEVEL": "WARNING"},
    )
    reader = TopicReader(pipeline.kafka)
    with pipeline, ExitStack() as stack:
        started = time.monotonic()
        pipeline.start(["ingest"])
        wait_until(
            f"{boxes} mailboxes read",
            lambda: sum(1 for h in _health(reader).values() if h.state == "ok") >= boxes or None,
            300,
            every=1.0,
        )
        ready = time.monotonic() - started
        arrivals = Arrivals(pipeline)
        arrivals.start()
        conns = []
        for address in addresses:
            imap = stack.enter_context(IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False))
            imap.login(address, PASSWORD)
            conns.append(imap)
        appended: dict[str, float] = {}
        start = time.monotonic()
        for n in range(letters):
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
            raw, mid = _letter(addresses[n % boxes], n, tag)
            conns[n % boxes].append("INBOX", raw)
            appended[mid] = time.time()
        wait_until("every letter", lambda: len(set(appended) & set(arrivals.seen)) == letters or None, 120)
        arrivals.close()
        latencies = sorted(arrivals.seen[mid] - at for mid, at in appended.items())
        health = _health(reader)
        waiting = sorted({f.waiting for h in health.values() for f in h.folders})
    reader.close()
    silent.close()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    extra = " + 1 refused login + 1 silent server" if faulty else ""
    print(f"\n{boxes} mailbox(es){extra}: all read after {ready:.1f} s (waiting by: {', '.join(waiting)})")
    limit = Path("/proc/sys/fs/inotify/max_user_instances")
    if boxes > 100 and limit.exists():
        print(
            f"  (Dovecot tells IDLE clients of new mail 0.5 s after it lands; with more imap processes than "
            f"fs.inotify.max_user_instances = {limit.read_text().strip()} it looks once a second instead)"
        )
    print(
        f"  APPEND -> LetterReceived, {letters} letters at {rate:.0f}/s: p50 {pct(0.5):.0f} ms, "
        f"p90 {pct(0.9):.0f} ms, p99 {pct(0.99):.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )
    if faulty:
        states = {k: (h.state, (h.error or "")[:60]) for k, h in health.items() if k in ("locked", "hung")}
        print(f"  the faulty ones: {states}")


@contextmanager
def servers() -> Iterator[tuple[str, Dovecot]]:
    with ExitStack() as stack:
        kafka = (
            os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack.enter_context(KafkaBroker()).bootstrap_servers
        )
        yield kafka, stack.enter_context(Dovecot())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--mailboxes", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--letters", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="APPENDs per second")
    parser.add_argument("--faulty", action="store_true", help="add a refused login and a silent server")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-ingest-"))
    try:
        with servers() as (kafka, dovecot):
            for boxes in args.mailboxes:
                run(kafka, dovecot, workdir, boxes, args.letters, args.rate, args.faulty)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
