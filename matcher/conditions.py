"""Pure: turns one configured condition into a test on a `LetterView`, its needles prepared once; no I/O.

Text operators compare Unicode's composed forms, after case folding (`matcher.view.fold`) unless the
condition is case-sensitive. A negative operator
is its positive twin's test with the result flipped, so each is exactly its twin's negation.
"""

from __future__ import annotations

from collections.abc import Callable

from matcher.view import FieldKey, LetterView, fold, normal
from schemas.conditions import Regex
from schemas.config import Condition, ConditionField, ConditionOperator

__all__ = ["Test", "compile_condition"]

Test = Callable[[LetterView], bool]
Texts = Callable[[LetterView, FieldKey], tuple[str, ...]]

_Op = ConditionOperator
_NEGATION = {
    _Op.DOES_NOT_CONTAIN: _Op.CONTAINS,
    _Op.IS_NOT_ANY_OF: _Op.IS_ANY_OF,
    _Op.IS_NOT_EMPTY: _Op.IS_EMPTY,
    _Op.DOES_NOT_MATCH_REGEX: _Op.MATCHES_REGEX,
    _Op.IS_FALSE: _Op.IS_TRUE,
    _Op.AFTER: _Op.BEFORE,
}


def compile_condition(condition: Condition) -> Test:
    positive = _NEGATION.get(condition.operator, condition.operator)
    return _test(condition, positive, negated=positive is not condition.operator)


def _test(condition: Condition, operator: ConditionOperator, negated: bool) -> Test:
    """The positive operator's test, its result flipped when `negated` (one call per condition, not two)."""
    key = condition.field
    if key is ConditionField.HAS_ATTACHMENTS:
        return lambda letter: letter.has_attachments != negated
    if key is ConditionField.RECEIVED:
        moment = condition.moment()
        return lambda letter: (letter.received < moment) != negated
    if operator is _Op.IS_EMPTY:
        return lambda letter: (not letter.texts(key)) != negated
    if operator is _Op.MATCHES_REGEX:
        return _matches(key, condition.regex(), negated)
    folding = not condition.case_sensitive
    texts: Texts = LetterView.folded if folding else LetterView.texts
    if operator is _Op.IS_ANY_OF:
        choices = frozenset(fold(v) if folding else normal(v) for v in condition.values())
        return lambda letter: choices.isdisjoint(texts(letter, key)) == negated
    assert isinstance(condition.value, str), "validated: a text value"
    needle = fold(condition.value) if folding else normal(condition.value)
    if operator is _Op.IS_EQUAL_TO:
        return lambda letter: (needle in texts(letter, key)) != negated
    make = {_Op.CONTAINS: _contains, _Op.STARTS_WITH: _starts_with, _Op.ENDS_WITH: _ends_with}[operator]
    return make(texts, key, needle, negated)


def _matches(key: FieldKey, regex: Regex, negated: bool) -> Test:
    search = regex.search

    def test(letter: LetterView) -> bool:
        for text in letter.encoded(key):
            if search(text) is not None:
                return not negated
        return negated

    return test


def _contains(texts: Texts, key: FieldKey, needle: str, negated: bool) -> Test:
    def test(letter: LetterView) -> bool:
        for text in texts(letter, key):
            if needle in text:
                return not negated
        return negated

    return test


def _starts_with(texts: Texts, key: FieldKey, needle: str, negated: bool) -> Test:
    def test(letter: LetterView) -> bool:
        for text in texts(letter, key):
            if text.startswith(needle):
                return not negated
        return negated

    return test


def _ends_with(texts: Texts, key: FieldKey, needle: str, negated: bool) -> Test:
    def test(letter: LetterView) -> bool:
        for text in texts(letter, key):
            if text.endswith(needle):
                return not negated
        return negated

    return test
