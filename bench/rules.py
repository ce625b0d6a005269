"""Benchmark: rule evaluation speed. 1,000 rules x 5 conditions over 20 mailboxes (50 rules each), on
pre-parsed letters of about 3 KB, 20 KB and 200 KB; only the letter's own mailbox's rules are evaluated.

    python bench/rules.py [--rounds 7]

Prints letters/s per size (median of the rounds) and the ratio to the 3 KB case. Nothing is asserted:
these machines are shared and noisy, so read medians and ratios.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from matcher.rules import CompiledRules, LetterView, compile_rules
from schemas.config import Mailbox
from schemas.events import Address

FIELDS = ("subject", "body", "from", "to", "cc")
OPERATORS = ("contains", "does_not_contain", "starts_with", "ends_with", "is_equal_to", "is_any_of")
WORDS = "invoice refund printer delivery urgent order contract meeting password account price".split()


def _mailbox(n: int, rng: random.Random) -> Mailbox:
    rules = []
    for r in range(50):
        conditions = []
        for _ in range(5):
            op = rng.choice(OPERATORS)
            value: object = [rng.choice(WORDS) for _ in range(3)] if op == "is_any_of" else rng.choice(WORDS)
            conditions.append({"field": rng.choice(FIELDS), "operator": op, "value": value})
        rules.append(
            {
                "id": f"r{r}",
                "name": f"rule {r}",
                "position": r,
                "conditions": conditions,
                "template": {"subject": "s", "body": "b"},
            }
        )
    return Mailbox.model_validate(
        {
            "id": f"box{n}",
            "organization": "o",
            "label": "L",
            "email": f"box{n}@x.test",
            "imap": {"host": "h", "username": "u", "password": "p"},
            "smtp": {"host": "h"},
            "reply_policy": "all_matching",
            "rules": rules,
        }
    )


def _letter(size: int, rng: random.Random) -> LetterView:
    body = " ".join(rng.choice([*WORDS, "lorem", "ipsum", "dolor"]) for _ in range(size // 6))[:size]
    return LetterView(
        subject=f"Re: {rng.choice(WORDS)} {rng.choice(WORDS)}",
        body=body,
        sender=Address(name="Ann Lee", address="ann@customer.test"),
        to=(Address(address="box@x.test"),),
        cc=(Address(name="Bob", address="bob@customer.test"),),
    )


def _rate(compiled: dict[str, CompiledRules], letters: list[tuple[str, LetterView]]) -> float:
    start = time.perf_counter()
    for box, letter in letters:
        compiled[box].evaluate(letter)
    return len(letters) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(7)
    boxes = [_mailbox(n, rng) for n in range(20)]
    compiled = {box.id: compile_rules(box) for box in boxes}
    print(
        f"{sum(len(b.rules) for b in boxes)} rules x 5 conditions over {len(boxes)} mailboxes; "
        f"every rule evaluated (all_matching); median of {args.rounds} rounds, one core"
    )
    base = None
    for label, size, count in (("3 KB", 3_000, 2_000), ("20 KB", 20_000, 600), ("200 KB", 200_000, 80)):
        letters = [(rng.choice(boxes).id, _letter(size, rng)) for _ in range(count)]
        median = statistics.median(_rate(compiled, letters) for _ in range(args.rounds))
        base = base or median
        print(f"  {label:>6}: {median:10,.0f} letters/s   ({median / base:.2f} x the 3 KB rate)")


if __name__ == "__main__":
    main()
