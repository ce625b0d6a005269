"""Pure: evaluates a mailbox's auto-response rules on a letter; no I/O.

Semantics (written down because the original left them implicit):
- text is compared in Unicode's composed form (NFC) and after case folding (`matcher.view.fold`: ß
  equals ss, İ equals i) unless a condition says `case_sensitive: true`;
- `from` offers the sender's display name and address: either may satisfy a condition;
- `to`, `cc`, `bcc` and `reply_to` are lists: a condition holds when any one recipient satisfies it (name
  or address); `is_empty` holds for an empty list;
- `header:<Name>` offers every value of that header (name compared case-insensitively), RFC 2047-decoded;
  a missing or blank header is empty;
- on an empty field every positive text operator but `is_empty` is false (even `matches_regex: "^$"`),
  and every negative operator is exactly the negation of its positive twin (`after` of `before` too);
- `matches_regex` searches each text with RE2 (linear time); `case_sensitive: false` is RE2's `(?i)`,
  simple case folding: one character for one (k, K and the Kelvin sign; ß and ẞ), never ß for ss;
- `has_attachments` takes `is_true` / `is_false`; `received` (the server's INTERNALDATE) takes
  `before` (strictly earlier) and `after` (at or later: exactly not `before`);
- a rule whose `created_at` is later than the letter's reception does not match it, with a `reason`;
- a rule's conditions are AND-combined; a rule with no conditions matches every letter it is not too
  early for.

Each mailbox's rules are compiled once, with every outcome a rule can have; a letter's fields are folded
(and encoded for RE2) once, by the `LetterView`, however many conditions test them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from matcher.conditions import Test, compile_condition
from matcher.view import LetterView, view_of
from schemas.config import AutoResponseRule, Mailbox, ReplyPolicy
from schemas.events import RuleOutcome

__all__ = ["CompiledRules", "LetterView", "compile_rules", "view_of"]


class _CompiledRule(NamedTuple):
    rule: AutoResponseRule
    created_at: datetime | None
    tests: tuple[Test, ...]
    matched: RuleOutcome
    failed: tuple[RuleOutcome, ...]
    """The outcome when condition i is the first to fail."""
    too_early: RuleOutcome


def _compile_rule(rule: AutoResponseRule) -> _CompiledRule:
    def outcome(matched: bool, failed: int | None = None, reason: str | None = None) -> RuleOutcome:
        return RuleOutcome(
            rule_id=rule.id, rule_name=rule.name, matched=matched, failed_condition=failed, reason=reason
        )

    created = rule.created_at.isoformat() if rule.created_at else ""
    return _CompiledRule(
        rule=rule,
        created_at=rule.created_at,
        tests=tuple(compile_condition(c) for c in rule.conditions),
        matched=outcome(True),
        failed=tuple(outcome(False, index) for index in range(len(rule.conditions))),
        too_early=outcome(False, reason=f"letter received before the rule was created ({created})"),
    )


@dataclass(frozen=True)
class CompiledRules:
    """One mailbox's active rules, ordered by position, with needles folded and regexes compiled once."""

    policy: ReplyPolicy
    rules: tuple[_CompiledRule, ...]

    def evaluate(self, letter: LetterView) -> tuple[list[RuleOutcome], list[AutoResponseRule]]:
        """Every rule's outcome (evaluation stops after the first match under first_match) and the rules
        whose reply is to be sent."""
        outcomes: list[RuleOutcome] = []
        chosen: list[AutoResponseRule] = []
        first_only = self.policy is ReplyPolicy.FIRST_MATCH
        received = letter.received
        # The hot loop: a letter meets every rule of its mailbox, so no call or lookup more than needed.
        for rule, created_at, tests, matched, failed, too_early in self.rules:
            if created_at is not None and received < created_at:
                outcomes.append(too_early)
                continue
            outcome = matched
            index = 0
            for test in tests:
                if not test(letter):
                    outcome = failed[index]
                    break
                index += 1
            outcomes.append(outcome)
            if outcome is matched:
                chosen.append(rule)
                if first_only:
                    break
        return outcomes, chosen


def compile_rules(mailbox: Mailbox) -> CompiledRules:
    return CompiledRules(mailbox.reply_policy, tuple(_compile_rule(rule) for rule in mailbox.active_rules()))
