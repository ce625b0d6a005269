"""Pure: evaluates a mailbox's auto-response rules on a letter; no I/O.

Semantics (written down because the original left them implicit):
- text is compared after Unicode case folding unless a condition says `case_sensitive: true`;
- `from` offers the sender's display name and address: either may satisfy a condition;
- `to` and `cc` are lists: a condition holds when any one recipient satisfies it (name or address);
  `is empty` holds for an empty list;
- every negative operator is exactly the negation of its positive twin;
- a rule's conditions are AND-combined; a rule with no conditions matches every letter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from matcher.letter import ParsedLetter
from schemas.config import (
    AutoResponseRule,
    Condition,
    ConditionField,
    ConditionOperator,
    Mailbox,
    ReplyPolicy,
)
from schemas.events import Address, LetterReceived, RuleOutcome

__all__ = ["CompiledRules", "LetterView", "compile_rules", "view_of"]

Op = ConditionOperator


@dataclass(frozen=True)
class LetterView:
    """The fields a condition can test."""

    subject: str
    body: str
    sender: Address | None
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()

    def candidates(self, field: ConditionField) -> list[tuple[str, ...]]:
        """Each item (a text, the sender, one recipient) as the strings that may satisfy a condition."""
        if field is ConditionField.SUBJECT:
            return [(self.subject,)] if self.subject.strip() else []
        if field is ConditionField.BODY:
            return [(self.body,)] if self.body.strip() else []
        if field is ConditionField.FROM:
            return [_address_texts(self.sender)] if self.sender else []
        return [_address_texts(a) for a in (self.to if field is ConditionField.TO else self.cc)]


def view_of(letter: LetterReceived, parsed: ParsedLetter, sender: Address) -> LetterView:
    """What conditions see of a received letter (its headers parsed by ingest, its body by the matcher)."""
    head = letter.headers
    return LetterView(subject=head.subject, body=parsed.text_body, sender=sender, to=head.to, cc=head.cc)


def _address_texts(address: Address) -> tuple[str, ...]:
    return (address.name, address.address) if address.name else (address.address,)


_POSITIVE: dict[Op, Callable[[str, Sequence[str]], bool]] = {
    Op.CONTAINS: lambda text, needles: needles[0] in text,
    Op.IS_EQUAL_TO: lambda text, needles: text == needles[0],
    Op.STARTS_WITH: lambda text, needles: text.startswith(needles[0]),
    Op.ENDS_WITH: lambda text, needles: text.endswith(needles[0]),
    Op.IS_ANY_OF: lambda text, needles: text in needles,
}
_NEGATION = {Op.DOES_NOT_CONTAIN: Op.CONTAINS, Op.IS_NOT_ANY_OF: Op.IS_ANY_OF, Op.IS_NOT_EMPTY: Op.IS_EMPTY}


@dataclass(frozen=True)
class _CompiledCondition:
    field: ConditionField
    positive: Op
    negated: bool
    needles: tuple[str, ...]
    fold: bool

    def holds(self, letter: LetterView) -> bool:
        items = letter.candidates(self.field)
        if self.positive is Op.IS_EMPTY:
            result = not items
        else:
            test = _POSITIVE[self.positive]
            result = any(
                test(text.casefold() if self.fold else text, self.needles) for item in items for text in item
            )
        return result != self.negated


def _compile_condition(condition: Condition) -> _CompiledCondition:
    positive = _NEGATION.get(condition.operator, condition.operator)
    fold = not condition.case_sensitive
    values = condition.values() if positive is Op.IS_ANY_OF else (condition.value,) if condition.value else ()
    needles = tuple(v.casefold() if fold else v for v in values if isinstance(v, str))
    return _CompiledCondition(condition.field, positive, positive is not condition.operator, needles, fold)


@dataclass(frozen=True)
class _CompiledRule:
    rule: AutoResponseRule
    conditions: tuple[_CompiledCondition, ...]

    def outcome(self, letter: LetterView) -> RuleOutcome:
        for index, condition in enumerate(self.conditions):
            if not condition.holds(letter):
                return RuleOutcome(
                    rule_id=self.rule.id, rule_name=self.rule.name, matched=False, failed_condition=index
                )
        return RuleOutcome(rule_id=self.rule.id, rule_name=self.rule.name, matched=True)


@dataclass(frozen=True)
class CompiledRules:
    """One mailbox's active rules, ordered by position, with needles folded once."""

    policy: ReplyPolicy
    rules: tuple[_CompiledRule, ...]

    def evaluate(self, letter: LetterView) -> tuple[list[RuleOutcome], list[AutoResponseRule]]:
        """Every rule's outcome (evaluation stops after the first match under first_match) and the rules
        whose reply is to be sent."""
        outcomes: list[RuleOutcome] = []
        chosen: list[AutoResponseRule] = []
        for compiled in self.rules:
            outcome = compiled.outcome(letter)
            outcomes.append(outcome)
            if outcome.matched:
                chosen.append(compiled.rule)
                if self.policy is ReplyPolicy.FIRST_MATCH:
                    break
        return outcomes, chosen


def compile_rules(mailbox: Mailbox) -> CompiledRules:
    return CompiledRules(
        mailbox.reply_policy,
        tuple(
            _CompiledRule(rule, tuple(_compile_condition(c) for c in rule.conditions))
            for rule in mailbox.active_rules()
        ),
    )
