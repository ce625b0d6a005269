"""Benchmark: rule evaluation speed. 1,000 rules x 5 conditions over 20 mailboxes (50 rules each), on
letters of about 3 KB, 20 KB and 200 KB; only the letter's own mailbox's rules are evaluated.

    python bench/rules.py [--rounds 7]

Two mixes of conditions, drawn at random: the plain text operators on subject, body, from, to and cc;
and every text field (bcc, reply_to and a header too) with every text operator, regexes included. Each
letter gets a fresh `LetterView` inside the timed loop, as the matcher makes one per letter, so folding
its fields is part of what is measured. Prints letters/s per size (median of the rounds) under both reply
policies, the ratio to the 3 KB case, and how many rules a letter met: five random conditions rarely all
hold, so first_match seldom stops early and this is close to its worst case. Nothing is asserted: these
machines are shared and noisy, so read medians and ratios.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matcher.rules import CompiledRules, LetterView, compile_rules
from schemas.config import Mailbox, ReplyPolicy
from schemas.events import Address

TEXT_FIELDS = ("subject", "body", "from", "to", "cc")
TEXT_OPERATORS = ("contains", "does_not_contain", "starts_with", "ends_with", "is_equal_to", "is_any_of")
MIXES = {
    "text operators on subject, body, from, to, cc": (TEXT_FIELDS, TEXT_OPERATORS),
    "every text field and operator, regexes and a header included": (
        (*TEXT_FIELDS, "bcc", "reply_to", "header:X-Priority"),
        (*TEXT_OPERATORS, "is_not_any_of", "matches_regex", "does_not_match_regex"),
    ),
}
WORDS = "invoice refund printer delivery urgent order contract meeting password account price".split()
RECEIVED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _value(operator: str, rng: random.Random) -> object:
    if operator.endswith("any_of"):
        return [rng.choice(WORDS) for _ in range(3)]
    if operator.endswith("regex"):
        return rng.choice((r"\b{0}s?\b", r"{0}\s+\w+", r"^(re|fwd):\s*{0}", r"{0}.*{1}")).format(
            rng.choice(WORDS), rng.choice(WORDS)
        )
    return rng.choice(WORDS)


def _mailbox(
    n: int, fields: tuple[str, ...], operators: tuple[str, ...], rng: random.Random
) -> dict[str, Any]:
    rules = []
    for r in range(50):
        conditions = []
        for _ in range(5):
            op = rng.choice(operators)
            conditions.append({"field": rng.choice(fields), "operator": op, "value": _value(op, rng)})
        rules.append(
            {
                "id": f"r{r}",
                "name": f"rule {r}",
                "position": r,
                "conditions": conditions,
                "template": {"subject": "s", "body": "b"},
            }
        )
    return {
        "id": f"box{n}",
        "organization": "o",
        "label": "L",
        "email": f"box{n}@x.test",
        "imap": {"host": "h", "username": "u", "password": "p"},
        "smtp": {"host": "h"},
        "rules": rules,
    }


def _letter(size: int, rng: random.Random) -> dict[str, Any]:
    """A letter's fields; the view is made from them in the timed loop."""
    body = " ".join(rng.choice([*WORDS, "lorem", "ipsum", "dolor"]) for _ in range(size // 6))[:size]
    return {
        "received": RECEIVED,
        "subject": f"Re: {rng.choice(WORDS)} {rng.choice(WORDS)}",
        "body": body,
        "sender": Address(name="Ann Lee", address="ann@customer.test"),
        "to": (Address(address="box@x.test"),),
        "cc": (Address(name="Bob", address="bob@customer.test"),),
        "reply_to": (Address(name="Ann Lee", address="ann@customer.test"),),
        "headers": {"x-priority": ("1 (Highest)",), "x-mailer": ("=?utf-8?q?Gr=C3=BC=C3=9Fe?=",)},
    }


def _rate(compiled: dict[str, CompiledRules], letters: list[tuple[str, dict[str, Any]]]) -> float:
    start = time.perf_counter()
    for box, fields in letters:
        compiled[box].evaluate(LetterView(**fields))
    return len(letters) / (time.perf_counter() - start)


def _met(compiled: dict[str, CompiledRules], letters: list[tuple[str, dict[str, Any]]]) -> str:
    """Rules evaluated per letter, and the share of letters some rule answers."""
    results = [compiled[box].evaluate(LetterView(**fields)) for box, fields in letters]
    rules = statistics.mean(len(outcomes) for outcomes, _ in results)
    answered = sum(1 for _, chosen in results if chosen) / len(results)
    return f"{rules:.1f} rules evaluated per letter, {answered:.1%} of letters answered"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(7)
    sizes = (("3 KB", 3_000, 2_000), ("20 KB", 20_000, 600), ("200 KB", 200_000, 80))
    letters = {label: [_letter(size, rng) for _ in range(count)] for label, size, count in sizes}
    print(f"1,000 rules x 5 conditions over 20 mailboxes; median of {args.rounds} rounds, one core")
    for mix, (fields, operators) in MIXES.items():
        boxes = [_mailbox(n, fields, operators, rng) for n in range(20)]
        mailbox_of = [rng.choice(boxes)["id"] for _ in range(max(count for _, _, count in sizes))]
        print(f"{mix}:")
        for policy in ReplyPolicy:
            compiled = {
                box["id"]: compile_rules(Mailbox.model_validate({**box, "reply_policy": policy.value}))
                for box in boxes
            }
            base = None
            for label, _, _ in sizes:
                work = list(zip(mailbox_of, letters[label], strict=False))
                median = statistics.median(_rate(compiled, work) for _ in range(args.rounds))
                base = base or median
                print(
                    f"  {policy.value:>12} {label:>6}: {median:10,.0f} letters/s"
                    f"   ({median / base:.2f} x the 3 KB rate)"
                )
            small = list(zip(mailbox_of, letters["3 KB"], strict=False))
            print(f"  {policy.value:>12}: {_met(compiled, small)}")


if __name__ == "__main__":
    main()
