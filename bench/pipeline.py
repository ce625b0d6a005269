"""Benchmark: the whole pipeline on one machine, through real Kafka, Dovecot and SMTP servers.

    python bench/pipeline.py [--letters 2000] [--size 3000] [--copies 1 2] [--rate 50] [--seconds 10]

Starts Kafka (or uses KAFKA_BOOTSTRAP_SERVERS), Dovecot and the SMTP relay from deploy/local, and the four
workers as separate processes (each stream worker in 1, then 2 processes: --copies). Four case mailboxes,
one rule answering every letter, so each letter makes a case and a reply (the reply delivered by SMTP
into the customer's Dovecot mailbox, its copy APPENDed to the mailbox's Sent folder).

- Throughput: APPENDs --letters letters (four IMAP connections, one per mailbox) and prints, for each
  stage, when the last letter got there and letters/s from the first APPEND: received (ingest),
  decided (matcher), cases (converter), replies accepted by the SMTP server and copies filed (responder).
- Latency: APPENDs letters at --rate per second for --seconds and prints APPEND -> reply accepted by the
  SMTP server, p50/p90/p99, and how it splits over ingest (with the IMAP server's IDLE notice: Dovecot
  waits 0.5 s), matcher and responder. --connections sets the mailboxes' smtp.connections (default 1).

Figures only, nothing asserted: the machine is shared and noisy, so run it more than once and read medians.
"""

from __future__ import annotations

import argparse
import email
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imapclient import IMAPClient

from deploy.local.dovecot import Dovecot
from deploy.local.kafka import KafkaBroker
from deploy.local.pipeline import Pipeline, TopicReader, local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import utcnow

MAILBOXES = 4
CUSTOMERS = 8
PASSWORD = "bench-password"
WORDS = "invoice refund printer delivery order contract meeting password account price".split()


def _letter(sender: str, to: str, n: int, size: int, tag: str) -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, f"Question {n} about my order"
    msg["Date"] = format_datetime(utcnow())
    mid = f"{tag}-{n}-{secrets.token_hex(4)}@customer.test"
    msg["Message-ID"] = f"<{mid}>"
    msg.set_content(" ".join(WORDS[(n + i) % len(WORDS)] for i in range(size // 8)))
    return msg.as_bytes(), mid


class Bench:
    """One pipeline of `copies` processes per stream worker, with fresh mailboxes and topics."""

    def __init__(
        self,
        kafka: str,
        dovecot: Dovecot,
        relay: SmtpRelay,
        copies: int,
        workdir: Path,
        log_level: str = "WARNING",
        connections: int = 1,
    ) -> None:
        self.dovecot, self.relay, self.copies = dovecot, relay, copies
        tag = secrets.token_hex(3)
        self.boxes = [f"desk{i}-{tag}@bench.test" for i in range(MAILBOXES)]
        self.customers = [f"customer{i}-{tag}@bench.test" for i in range(CUSTOMERS)]
        for address in (*self.boxes, *self.customers):
            dovecot.add_user(address, PASSWORD)
        rule = {
            "id": "ack",
            "name": "Acknowledge",
            "template": {
                "subject": "{{ letter.reply_subject }}",
                "body": "Hello {{ letter.from_name or letter.from_address }},\n\nthank you for writing to "
                "{{ mailbox.label }}.{% if record %} Your case: {{ record.id }}.{% endif %}\n",
            },
        }
        config: dict[str, Any] = {
            "mailboxes": [
                local_mailbox(
                    f"desk{i}",
                    box,
                    PASSWORD,
                    dovecot.imap_port,
                    relay.port,
                    processing={"type": "case"},
                    rules=[rule],
                    limits={"per_sender_per_hour": 1_000_000, "per_sender_per_day": 1_000_000},
                    smtp={
                        "host": "127.0.0.1",
                        "port": relay.port,
                        "security": "none",
                        "connections": connections,
                    },
                )
                for i, box in enumerate(self.boxes)
            ]
        }
        self.pipeline = Pipeline(
            config,
            kafka,
            workdir / f"b{tag}",
            namespace=f"bench{tag}",
            partitions=MAILBOXES,
            poll_seconds=0.2,
            env={"MAILROOM_LOG_LEVEL": log_level},
        )
        self.reader = TopicReader(self.pipeline.kafka)
        self.sent_before = 0
        self.appended = 0
        self.tag = tag
        self.hops: dict[str, list[float]] = {}

    def counts(self) -> dict[str, int]:
        r = self.reader
        outcomes = r.count(topics.REPLY_OUTCOMES)
        return {
            "received": r.count(topics.LETTERS_RECEIVED),
            "decided": r.count(topics.LETTERS_DECIDED),
            "cases": r.count(topics.CASES),
            "replies accepted by SMTP": self._accepted(),
            "copies filed": outcomes // 2,
        }

    def _accepted(self) -> int:
        return sum(1 for r in self.relay.received if r.mail_from in self.boxes)

    def append(self, letters: list[tuple[int, bytes]], at: dict[str, float] | None = None) -> None:
        """APPENDs each (mailbox index, bytes) over one connection per mailbox, all mailboxes at once."""
        by_box: dict[int, list[bytes]] = {}
        for box, raw in letters:
            by_box.setdefault(box, []).append(raw)

        def run(box: int, raws: list[bytes]) -> None:
            # MULTIAPPEND, 20 letters a command: the load generator should cost the machine little.
            with IMAPClient(self.dovecot.host, port=self.dovecot.imap_port, ssl=False) as imap:
                imap.login(self.boxes[box], PASSWORD)
                for start in range(0, len(raws), 20):
                    imap.multiappend("INBOX", raws[start : start + 20])

        threads = [threading.Thread(target=run, args=item) for item in by_box.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.appended += len(letters)

    def make(self, count: int, size: int, label: str) -> list[tuple[int, bytes]]:
        made = []
        for n in range(count):
            raw, _ = _letter(self.customers[n % CUSTOMERS], self.boxes[n % MAILBOXES], n, size, label)
            made.append((n % MAILBOXES, raw))
        return made

    def wait_all(self, timeout: float) -> None:
        want = self.appended
        wait_until(
            f"{want} letters through every stage",
            lambda: all(v >= want for v in self.counts().values()),
            timeout,
            every=0.2,
        )

    def throughput(self, letters: int, size: int) -> dict[str, float]:
        """Seconds from the first APPEND until each stage had every letter."""
        batch = self.make(letters, size, f"t{self.tag}")
        base = self.counts()
        start = time.monotonic()
        done: dict[str, float] = {}

        def append() -> None:
            self.append(batch)
            done["APPENDed"] = time.monotonic() - start

        appending = threading.Thread(target=append)
        appending.start()
        deadline = start + max(120.0, letters / 10)
        while len(done) < len(base) + 1 and time.monotonic() < deadline:
            now = self.counts()
            for stage, count in now.items():
                if stage not in done and count - base[stage] >= letters:
                    done[stage] = time.monotonic() - start
            time.sleep(0.05)
        appending.join()
        return done

    def latency(self, rate: float, seconds: float, size: int) -> list[float]:
        """APPEND -> reply accepted by SMTP, for letters APPENDed at `rate` per second."""
        count = int(rate * seconds)
        ids: dict[str, float] = {}
        with ExitStack() as stack:
            conns = []
            for box in self.boxes:
                imap = stack.enter_context(
                    IMAPClient(self.dovecot.host, port=self.dovecot.imap_port, ssl=False)
                )
                imap.login(box, PASSWORD)
                conns.append(imap)
            start = time.monotonic()
            for n in range(count):
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
                raw, mid = _letter(self.customers[n % CUSTOMERS], self.boxes[n % MAILBOXES], n, size, "l")
                ids[mid] = time.time()
                conns[n % MAILBOXES].append("INBOX", raw)
        self.appended += count
        self.wait_all(120)
        latencies = []
        accepted: dict[str, float] = {}
        for received in self.relay.received:
            parsed = email.message_from_bytes(received.data)
            parent = (parsed.get("In-Reply-To") or "").strip().strip("<>")
            if parent in ids:
                latencies.append(received.at - ids[parent])
                accepted[parent] = received.at
        self.hops = self._hops(ids, accepted)
        return latencies

    def _hops(self, appended: dict[str, float], accepted: dict[str, float]) -> dict[str, list[float]]:
        """Where the time goes, per letter: APPEND -> LetterReceived written (ingest, with the IMAP server's
        notice), -> ReplyRequested written (matcher), -> the reply accepted by SMTP (responder)."""
        received = {
            value["headers"]["message_id"]: datetime.fromisoformat(value["produced_at"]).timestamp()
            for value in (json.loads(r.value) for r in self.reader.records(topics.LETTERS_RECEIVED))
        }
        requested = {
            value["in_reply_to"]: datetime.fromisoformat(value["produced_at"]).timestamp()
            for value in (json.loads(r.value) for r in self.reader.records(topics.REPLIES_REQUESTED))
        }
        hops: dict[str, list[float]] = {"ingest": [], "matcher": [], "responder": []}
        for mid, at in appended.items():
            if mid in received and mid in requested and mid in accepted:
                hops["ingest"].append(received[mid] - at)
                hops["matcher"].append(requested[mid] - received[mid])
                hops["responder"].append(accepted[mid] - requested[mid])
        return hops


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each kind of process on this machine: each worker
    type (all its copies), the Kafka broker, Dovecot's processes by name, and this process (APPENDs and
    the SMTP relay). Processes that ended meanwhile are not counted."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(entry.name) == os.getpid():
            name = "bench (APPENDs, SMTP relay)"
        elif b"mailroom" in args and len(args) > 3:
            name = args[args.index(b"mailroom") + 1].decode()
        elif b"kafka.Kafka" in args:
            name = "kafka"
        elif comm in ("imap", "lmtp", "dovecot", "auth", "imap-login", "anvil", "log", "config", "stats"):
            name = f"dovecot {comm}"
        else:
            continue
        found[name] = found.get(name, 0.0) + seconds
    return found


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def servers() -> Iterator[tuple[str, Dovecot, SmtpRelay]]:
    """Kafka (or the broker KAFKA_BOOTSTRAP_SERVERS names), Dovecot and the SMTP relay, stopped after."""
    with ExitStack() as stack:
        kafka = (
            os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack.enter_context(KafkaBroker()).bootstrap_servers
        )
        dovecot = stack.enter_context(Dovecot())
        yield kafka, dovecot, stack.enter_context(SmtpRelay(dovecot.host, dovecot.lmtp_port))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--letters", type=int, default=2000)
    parser.add_argument("--size", type=int, default=3000, help="about how many bytes a letter has")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rate", type=float, default=50.0, help="letters/s in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument(
        "--connections", type=int, default=1, help="smtp.connections of each mailbox (replies sent at once)"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-"))
    with servers() as (kafka, dovecot, relay):
        print(
            f"{args.letters} letters of about {args.size} bytes, {MAILBOXES} mailboxes, a case + a reply each"
        )
        for copies in args.copies:
            bench = Bench(kafka, dovecot, relay, copies, workdir, connections=args.connections)
            with bench.pipeline:
                bench.pipeline.start(copies=copies)
                warm = bench.make(MAILBOXES, args.size, "warm")
                bench.append(warm)
                bench.wait_all(180)  # every process up, its group joined, its connections open
                cpu_before = _cpu_seconds()
                done = bench.throughput(args.letters, args.size)
                cpu = {k: v - cpu_before.get(k, 0.0) for k, v in _cpu_seconds().items()}
                print(f"\n{copies} process(es) per stream worker: seconds until the last letter, letters/s")
                stages = (
                    "APPENDed",
                    "received",
                    "decided",
                    "cases",
                    "replies accepted by SMTP",
                    "copies filed",
                )
                for stage in stages:
                    if stage in done:
                        print(f"  {stage:<26} {done[stage]:7.2f} s  {args.letters / done[stage]:8.0f} /s")
                    else:
                        print(f"  {stage:<26} not reached in time")
                print(
                    f"  CPU seconds per 1,000 letters (the {os.cpu_count()} cores' capacity: "
                    f"{os.cpu_count() or 1:.0f} s per second):"
                )
                for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
                    if seconds >= 0.01:
                        print(f"    {name:<30} {seconds * 1000 / args.letters:6.2f}")
                latencies = bench.latency(args.rate, args.seconds, args.size)
                if latencies:
                    p50, p90, p99 = (_percentile(latencies, q) for q in (0.5, 0.9, 0.99))
                    print(
                        f"  APPEND -> reply at {args.rate:.0f} letters/s ({len(latencies)} letters): "
                        f"p50 {p50:.2f} s, p90 {p90:.2f} s, p99 {p99:.2f} s"
                    )
                    print(
                        "    of which, p50 / p99: "
                        + ", ".join(
                            f"{hop} {_percentile(v, 0.5):.2f} / {_percentile(v, 0.99):.2f} s"
                            for hop, v in bench.hops.items()
                            if v
                        )
                    )
            bench.reader.close()
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
