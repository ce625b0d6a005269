"""Benchmark: what a stream worker's restart costs after N letters, through real Kafka, Dovecot and SMTP.

    python bench/restart.py [--letters 5000] [--sizes 3000 20000] [--copies 1 2]

For each letter size, runs N letters through the pipeline (bench/pipeline.py's setup: four case mailboxes,
a case and a reply each), stops the stream workers, starts them again (in --copies processes each) and
sends one more letter per mailbox, which makes each instance read back the partitions it owns. Prints,
per worker type, the seconds its ledger took (from its log) and its resident memory after it, the median
over its instances. Restart cost should follow the number of letters and threads an instance owns, not
the letters' size. Figures only, nothing asserted.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import MAILBOXES, Bench, servers  # bench/pipeline.py

from deploy.local.pipeline import wait_until

STREAM = ("matcher", "converter", "responder")
_LEDGER = re.compile(r"ledger: \w+ partitions \[[\d, ]*\]: (\d+) facts, (\d+) outputs.* in ([\d.]+) s")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def restart(bench: Bench, copies: int) -> dict[str, tuple[float, float, int]]:
    """Restarts the stream workers; per worker type, the medians over its instances: ledger seconds,
    RSS MiB, facts read."""
    pipeline = bench.pipeline
    pipeline.stop(STREAM)
    for name in STREAM:
        for path in pipeline.workdir.glob(f"{name}*.log"):
            path.unlink()
    pipeline.start(STREAM, copies=copies)
    names = [n for n in pipeline.running() if n.partition(".")[0] in STREAM]
    # Every instance in its group first, so that each reads back only the share it keeps.
    wait_until("every instance's partitions", lambda: all("assigned" in pipeline.log(n) for n in names), 120)
    time.sleep(3)
    bench.append(bench.make(MAILBOXES, 1000, f"r{time.monotonic_ns()}"))

    bench.wait_all(180)  # every letter through: each instance that got one has read its ledger back
    found = {n: [tuple(map(float, m)) for m in _LEDGER.findall(pipeline.log(n))] for n in names}
    result = {}
    for worker in STREAM:
        # An instance whose partitions got none of the new letters had no reason to read anything back.
        runs = [(n, found[n][-1]) for n in names if n.partition(".")[0] == worker and found[n]]
        if not runs:
            continue
        rss = [_rss_mib(pipeline._procs[n].pid) for n, _ in runs]
        result[worker] = (
            statistics.median(r[2] for _, r in runs),
            statistics.median(rss),
            int(statistics.median(r[0] for _, r in runs)),
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--letters", type=int, default=5000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 20000])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-"))
    with servers() as (kafka, dovecot, relay):
        print(f"restart of each stream worker after {args.letters} letters: ledger seconds, RSS MiB, facts")
        for size in args.sizes:
            bench = Bench(kafka, dovecot, relay, 1, workdir, log_level="INFO")
            with bench.pipeline:
                bench.pipeline.start()
                bench.append(bench.make(args.letters, size, f"s{size}"))
                bench.wait_all(max(300.0, args.letters / 5))
                for copies in args.copies:
                    result = restart(bench, copies)
                    print(f"  letters of {size:,} bytes, {copies} instance(s) each:")
                    for worker, (seconds, rss, facts) in result.items():
                        print(f"    {worker:<10} {seconds:6.2f} s  {rss:6.1f} MiB  {facts:7d} facts")
            bench.reader.close()


if __name__ == "__main__":
    main()
