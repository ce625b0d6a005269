"""Rule conditions as configuration: the fields a condition tests, its operators and the value each takes.

Pure data validated by pydantic; the matcher evaluates them. A regular expression is compiled here, once,
so that one too large or invalid is a configuration error and never a surprise on a letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)

__all__ = [
    "REGEX_MAX_MEM",
    "Condition",
    "ConditionField",
    "ConditionOperator",
    "HeaderField",
    "Regex",
    "compile_regex",
    "parse_moment",
]

REGEX_MAX_MEM = 1 << 20
"""Memory a compiled regular expression may use (RE2's max_mem): 1 MiB."""


class ConditionField(StrEnum):
    SUBJECT = "subject"
    BODY = "body"
    FROM = "from"
    TO = "to"
    CC = "cc"
    BCC = "bcc"
    REPLY_TO = "reply_to"
    HAS_ATTACHMENTS = "has_attachments"
    RECEIVED = "received"
    """When the IMAP server received the letter (its INTERNALDATE)."""


@dataclass(frozen=True)
class HeaderField:
    """`header:<Name>` in YAML: the values of every header of that name (compared case-insensitively)."""

    name: str
    """Lower-cased."""

    def __str__(self) -> str:
        return f"header:{self.name}"


class ConditionOperator(StrEnum):
    CONTAINS = "contains"
    DOES_NOT_CONTAIN = "does_not_contain"
    IS_EQUAL_TO = "is_equal_to"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    IS_ANY_OF = "is_any_of"
    IS_NOT_ANY_OF = "is_not_any_of"
    IS_EMPTY = "is_empty"
    IS_NOT_EMPTY = "is_not_empty"
    MATCHES_REGEX = "matches_regex"
    DOES_NOT_MATCH_REGEX = "does_not_match_regex"
    IS_TRUE = "is_true"
    IS_FALSE = "is_false"
    BEFORE = "before"
    AFTER = "after"


_Op = ConditionOperator

_NO_VALUE = {_Op.IS_EMPTY, _Op.IS_NOT_EMPTY, _Op.IS_TRUE, _Op.IS_FALSE}
_LIST_VALUE = {_Op.IS_ANY_OF, _Op.IS_NOT_ANY_OF}
_REGEX = {_Op.MATCHES_REGEX, _Op.DOES_NOT_MATCH_REGEX}
# Fields that are not text take their own operators; text fields take every other operator.
_OPERATORS_OF = {
    ConditionField.HAS_ATTACHMENTS: (_Op.IS_TRUE, _Op.IS_FALSE),
    ConditionField.RECEIVED: (_Op.BEFORE, _Op.AFTER),
}
_FIELD_OF = {op: field for field, ops in _OPERATORS_OF.items() for op in ops}
# RFC 5322 field names: printable US-ASCII except the colon.
_HEADER_NAME_CHARS = frozenset(chr(c) for c in range(33, 127)) - {":"}


def _parse_field(value: object) -> ConditionField | HeaderField:
    if isinstance(value, ConditionField | HeaderField):
        return value
    if isinstance(value, str):
        if value in ConditionField._value2member_map_:
            return ConditionField(value)
        prefix, colon, name = value.partition(":")
        name = name.strip()
        if prefix == "header" and colon and name and set(name) <= _HEADER_NAME_CHARS:
            return HeaderField(name.lower())
    known = ", ".join(f.value for f in ConditionField)
    raise ValueError(f"unknown field: use one of {known}, or header:<Name> such as header:X-Priority")


ConditionTarget = Annotated[
    ConditionField | HeaderField,
    PlainValidator(_parse_field),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "a field name, or header:<Name>"}),
]


class Regex(Protocol):
    """A compiled RE2 expression (linear time in the text's length)."""

    def search(self, text: bytes) -> object | None: ...


@lru_cache(maxsize=4096)
def compile_regex(pattern: str, case_sensitive: bool) -> Regex:
    """The pattern compiled by RE2 with at most REGEX_MAX_MEM; ValueError when invalid or too large.

    Cached, so validating a configuration and compiling its rules compile each pattern once. RE2 is
    imported here, not with the module: reading events needs pydantic alone."""
    import re2

    options = re2.Options()
    options.max_mem = REGEX_MAX_MEM
    options.case_sensitive = case_sensitive
    options.never_capture = True
    options.log_errors = False
    try:
        compiled: Regex = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args else str(exc)
        if "too large" in reason:
            raise ValueError(
                f"regular expression {pattern!r} is too large: it needs more than "
                f"{REGEX_MAX_MEM // (1 << 20)} MiB compiled ({reason})"
            ) from None
        raise ValueError(f"invalid regular expression {pattern!r}: {reason}") from None
    return compiled


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date (midnight UTC) or date-time; one without a UTC offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"needs an ISO date or date-time such as 2024-05-01 or 2024-05-01T09:00:00+02:00, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Condition(BaseModel):
    """One test on a letter: field + operator + value. Text comparison ignores case unless told."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: ConditionTarget
    operator: ConditionOperator
    value: str | tuple[str, ...] | None = None
    case_sensitive: bool = False

    @field_validator("value", mode="before")
    @classmethod
    def _plain_values(cls, value: object) -> object:
        # YAML reads `2024-05-01` as a date: a condition keeps the text it stands for.
        if isinstance(value, date):
            return value.isoformat()
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _operator_fits_field_and_value_fits_operator(self) -> Condition:
        op = self.operator
        own = _OPERATORS_OF.get(self.field) if isinstance(self.field, ConditionField) else None
        if own is not None and op not in own:
            raise ValueError(f"field {self.field} takes operator {' or '.join(own)}, not {op.value}")
        if own is None and op in _FIELD_OF:
            raise ValueError(f"operator {op.value} is for field {_FIELD_OF[op].value} only")
        if op in _NO_VALUE:
            if self.value not in (None, "", ()):
                raise ValueError(f"operator {op.value} takes no value, got {self.value!r}")
        elif op in _LIST_VALUE:
            if self.value is None or not self.values():
                raise ValueError(f"operator {op.value} needs a list of values")
        elif not isinstance(self.value, str) or self.value == "":
            raise ValueError(f"operator {op.value} needs a non-empty text value, got {self.value!r}")
        elif op in _REGEX:
            self.regex()
        elif op in (_Op.BEFORE, _Op.AFTER):
            try:
                self.moment()
            except ValueError as exc:
                raise ValueError(f"operator {op.value} {exc}") from None
        return self

    def values(self) -> tuple[str, ...]:
        """The value as a list: a YAML list, or a comma-separated string (trimmed) as the original takes."""
        if self.value is None:
            return ()
        if isinstance(self.value, str):
            return tuple(part.strip() for part in self.value.split(",") if part.strip())
        return tuple(v.strip() for v in self.value if v.strip())

    def regex(self) -> Regex:
        """The compiled regular expression of `matches_regex` and `does_not_match_regex`."""
        if not isinstance(self.value, str):
            raise ValueError(f"operator {self.operator.value} needs a regular expression")
        return compile_regex(self.value, self.case_sensitive)

    def moment(self) -> datetime:
        """The point in time of `before` and `after`."""
        if not isinstance(self.value, str):
            raise ValueError(f"operator {self.operator.value} needs a date or date-time")
        return parse_moment(self.value)
