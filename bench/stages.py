"""Benchmark: milliseconds per letter of each pure stage of the pipeline, on one core, no I/O.

    python bench/stages.py [--letters 500] [--rounds 5] [--size 3000] [--unusual] [--profile STAGE]

Each letter (about --size bytes: a plain text part and an html alternative, as mail clients send them)
goes through what each worker does with it, events serialized and parsed as they travel:
- ingest: the IMAP bytes -> LetterReceived -> JSON;
- matcher: JSON -> LetterReceived -> thread, rules (a case mailbox with two rules, one matching) ->
  LetterThreaded, LetterShared, LetterDecided, ReplyRequested -> JSON;
- converter: JSON -> LetterThreaded -> CaseCreated -> JSON;
- responder: JSON -> ReplyRequested -> the reply's bytes (template rendered, message composed).
`--unusual`: every letter has what sends it down the email package's slower paths (a non-ASCII display
name and subject as encoded-words, a name with a dot, a quoted Reply-To name, a multipart/related html
part); without it, letters are of the plain kind most mail is. Prints the median ms per letter of each
stage, letters/s of the four together, and the bytes each event takes against the letter's.
`--profile matcher` prints cProfile's top functions of one stage. Nothing is asserted: machines are
shared and noisy, so read medians and ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from converter.mapping import record_for
from ingest.parse import letter_event
from matcher.decision import decide
from matcher.limits import ReplyHistory
from matcher.rules import compile_rules
from matcher.threads import ThreadIndex
from responder.compose import outgoing
from schemas.config import MailroomConfig
from schemas.events import LetterReceived, LetterThreaded, ReplyRequested, parse_event

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
WORDS = "invoice refund printer delivery order contract meeting password account price".split()

CONFIG = MailroomConfig.model_validate(
    {
        "mailboxes": [
            {
                "id": "support",
                "organization": "acme",
                "label": "Acme Support",
                "email": "support@acme.example",
                "imap": {"host": "h", "username": "u", "password": "p"},
                "smtp": {"host": "h"},
                "processing": {"type": "case"},
                "rules": [
                    {
                        "id": "urgent",
                        "name": "Urgent",
                        "conditions": [{"field": "subject", "operator": "contains", "value": "urgent"}],
                        "template": {"subject": "Urgent: {{ letter.reply_subject }}", "body": "We hurry."},
                    },
                    {
                        "id": "ack",
                        "name": "Everything else",
                        "template": {
                            "subject": "{{ letter.reply_subject }}",
                            "body": "Hello {{ letter.from_name or letter.from_address }},\n\n"
                            "thank you for writing to {{ mailbox.label }}.\n"
                            "{% if record %}Your case: {{ record.id }}{% endif %}\n",
                        },
                    },
                ],
            }
        ]
    }
)


def make_letter(n: int, size: int, unusual: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = (
        f"Jürgen M. Kunde {n} <customer{n}@example.com>"
        if unusual
        else f"Customer {n} <customer{n}@example.com>"
    )
    msg["To"] = "Acme Support <support@acme.example>"
    if unusual:
        msg["Reply-To"] = f'"Kunde, Jürgen" <reply{n}@example.com>'
    msg["Subject"] = (
        f"Frage zur Bestellung {n} \u2013 dringend? Nein" if unusual else f"Question about order {n}"
    )
    msg["Date"] = format_datetime(NOW)
    msg["Message-ID"] = f"<letter-{n}@example.com>"
    text = " ".join(WORDS[(n + i) % len(WORDS)] for i in range(size // 14))
    msg.set_content(text)
    msg.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")
    if unusual:
        html = msg.get_body(preferencelist=("html",))
        assert html is not None
        html.add_related(b"GIF89a", maintype="image", subtype="gif", cid=f"<logo{n}@example.com>")
    return msg.as_bytes()


class Stages:
    """The four stages over one set of letters, each taking the previous stage's bytes."""

    def __init__(self, raws: list[bytes]) -> None:
        self.raws = raws
        self.mailbox = CONFIG.mailboxes[0]
        self.rules = compile_rules(self.mailbox)

    def ingest(self) -> list[bytes]:
        return [
            letter_event("support", "acme", "INBOX", 1, n + 1, NOW, raw).to_bytes()
            for n, raw in enumerate(self.raws)
        ]

    def matcher(self, received: list[bytes]) -> tuple[list[bytes], list[bytes], list[int]]:
        threads, history = ThreadIndex(), ReplyHistory()
        threaded, replies, other = [], [], []
        for data in received:
            letter = parse_event(LetterReceived, data)
            outcome = decide(letter, self.mailbox, CONFIG, self.rules, threads, history, NOW)
            threaded.append(outcome.threaded.to_bytes())
            replies.extend(r.to_bytes() for r in outcome.replies)
            other.append(len(outcome.shared.to_bytes()) + len(outcome.decided.to_bytes()))
            threads.remember_letter(outcome.threaded)
            for reply in outcome.replies:
                threads.remember_reply(reply)
                history.remember(reply)
        return threaded, replies, other

    def converter(self, threaded: list[bytes]) -> list[bytes]:
        made = []
        for data in threaded:
            record = record_for(parse_event(LetterThreaded, data), self.mailbox, NOW)
            if record is not None:
                made.append(record.to_bytes())
        return made

    def responder(self, replies: list[bytes]) -> list[bytes]:
        return [outgoing(parse_event(ReplyRequested, d), self.mailbox, NOW).data for d in replies]


def _timed(call: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--letters", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=3000, help="about how many bytes a letter has")
    parser.add_argument("--unusual", action="store_true", help="letters that take the slower paths")
    parser.add_argument("--profile", choices=("ingest", "matcher", "converter", "responder"))
    args = parser.parse_args()

    stages = Stages([make_letter(n, args.size, args.unusual) for n in range(args.letters)])
    received = stages.ingest()
    threaded, replies, _ = stages.matcher(received)
    calls: dict[str, Callable[[], object]] = {
        "ingest": stages.ingest,
        "matcher": lambda: stages.matcher(received),
        "converter": lambda: stages.converter(threaded),
        "responder": lambda: stages.responder(replies),
    }
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(calls[args.profile])
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
        return

    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            seconds[name].append(_timed(call)[0])
    letter_bytes = statistics.mean(len(r) for r in stages.raws)
    kind = "unusual " if args.unusual else ""
    print(
        f"{args.letters} {kind}letters of about {letter_bytes:,.0f} bytes, median of {args.rounds} rounds, "
        "one core"
    )
    total = 0.0
    for name, times in seconds.items():
        per_letter = statistics.median(times) / args.letters
        total += per_letter
        print(f"  {name:<10} {per_letter * 1000:7.3f} ms per letter  {1 / per_letter:9,.0f} letters/s")
    print(f"  {'all four':<10} {total * 1000:7.3f} ms per letter  {1 / total:9,.0f} letters/s")
    _, (_, _, other) = _timed(lambda: stages.matcher(received))
    sizes = {
        "LetterReceived": statistics.mean(map(len, received)),
        "LetterThreaded": statistics.mean(map(len, threaded)),
        "ReplyRequested": statistics.mean(map(len, replies)),
        "CaseCreated": statistics.mean(map(len, stages.converter(threaded))),
        "LetterShared + LetterDecided": statistics.mean(other),  # type: ignore[arg-type]
    }
    print("event bytes per letter (x the letter's size):")
    for name, size in sizes.items():
        print(f"  {name:<30} {size:9,.0f}  x{size / letter_bytes:.2f}")


if __name__ == "__main__":
    main()
