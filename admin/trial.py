"""Pure: "try this rule on the last letters of this mailbox": each letter received decided again with the
configuration as it is now, through the matcher's own decision (nothing is sent, nothing is written).

Each letter is tried as the first of its thread and with no earlier replies counted (as `mailroom rules
test`), so the per-thread and per-sender limits do not hold a reply back here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailroom.grids import condition_text
from matcher.decision import decide
from matcher.errors import UnprocessableLetterError
from matcher.limits import ReplyHistory
from matcher.rules import compile_rules
from matcher.threads import ThreadIndex
from schemas.config import Mailbox, MailroomConfig
from schemas.events import LetterReceived, RuleOutcome

__all__ = ["TrialRow", "try_letters"]


@dataclass(frozen=True)
class TrialRow:
    """One letter: whether the mailbox would answer it, by which rules, or why not; and how the rule being
    tried fares on it."""

    received: datetime
    sender: str
    subject: str
    message_id: str
    answered: bool
    answered_by: tuple[str, ...]
    why_not: str | None
    rule: str | None
    """The tried rule's outcome in words (None: no rule was named)."""


def _outcome_words(outcome: RuleOutcome | None, box: Mailbox, rule_id: str) -> str:
    rule = next((r for r in box.rules if r.id == rule_id), None)
    if rule is None:
        return "no such rule"
    if not rule.active:
        return "inactive: never evaluated"
    if outcome is None:
        return "not evaluated: an earlier rule answered (first_match)"
    if outcome.matched:
        return "matched"
    if outcome.failed_condition is not None:
        index = outcome.failed_condition
        failed = condition_text(rule.conditions[index])
        return f"not matched: condition {index + 1} of {len(rule.conditions)} failed: {failed}"
    return f"not matched: {outcome.reason}"


def try_letters(
    letters: list[LetterReceived],
    box: Mailbox,
    config: MailroomConfig,
    now: datetime,
    last: int = 20,
    rule_id: str | None = None,
) -> list[TrialRow]:
    """The mailbox's `last` letters (newest first), each decided with the configuration as it is now."""
    compiled = compile_rules(box)
    rows = []
    for letter in sorted(letters, key=lambda item: item.occurred_at)[-last:][::-1]:
        head = letter.headers
        sender = head.from_.address if head.from_ is not None else ""
        try:
            outcome = decide(letter, box, config, compiled, ThreadIndex(), ReplyHistory(), now)
        except UnprocessableLetterError as exc:
            why = f"cannot be processed (a dead letter): {exc}"
            rows.append(
                TrialRow(letter.occurred_at, sender, head.subject, head.message_id, False, (), why, None)
            )
            continue
        decided = outcome.decided
        by = tuple(r.rule_name for r in decided.rules if r.matched and outcome.replies)
        why_not: str | None = None
        if decided.skipped_because:
            why_not = f"the loop guard stops it: {decided.skipped_because}"
        elif not outcome.replies:
            failed = [
                f"{r.rule_name}: {_outcome_words(r, box, r.rule_id)}" for r in decided.rules if not r.matched
            ]
            why_not = "no active rule matched" + (f" ({'; '.join(failed)})" if failed else "")
        tried = None
        if rule_id is not None:
            if decided.skipped_because:
                tried = "not evaluated: the loop guard stops the letter first"
            else:
                found = next((r for r in decided.rules if r.rule_id == rule_id), None)
                tried = _outcome_words(found, box, rule_id)
        rows.append(
            TrialRow(
                letter.occurred_at,
                sender,
                head.subject,
                head.message_id,
                bool(outcome.replies),
                by,
                why_not,
                tried,
            )
        )
    return rows
