"""Pure: the jinja2 sandbox reply templates run in: their inputs read-only, no value or reply over a size
limit, and a time limit, so that a template from the configuration cannot change the letter it answers,
fill the memory or hold up the responder.

jinja2's `ImmutableSandboxedEnvironment` refuses methods that change lists and dicts; this one also
checks the size of `*` and `**` before computing them, counts the reply's characters as they are made,
and looks at the clock on every call, attribute, item and `range` step. Undefined values are errors
(StrictUndefined) that name the variable: "'letter' has no attribute 'sujbect'".
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from responder.errors import TemplateError

__all__ = ["MAX_CHARS", "MAX_SECONDS", "Sandbox", "Variable", "render_limited"]

MAX_CHARS = 256 * 1024
"""The longest subject or body a template may make (the whole reply must fit in 512 KiB)."""
MAX_SECONDS = 2.0
"""How long rendering one reply may take."""
_MAX_EXPONENT = 1024

_deadline: ContextVar[float] = ContextVar("deadline", default=float("inf"))
_limit: ContextVar[float] = ContextVar("limit", default=MAX_SECONDS)


def _tick() -> None:
    if time.monotonic() > _deadline.get():
        raise TemplateError(f"the template took longer than {_limit.get():g} s to render")


def _too_large(what: str) -> TemplateError:
    return TemplateError(f"the template makes {what} too large (over {MAX_CHARS} characters)")


def _range(*args: int) -> Iterator[int]:
    """jinja2's sandboxed `range` (at most 100,000 steps), looking at the clock as it goes."""
    for step, value in enumerate(safe_range(*args)):
        if not step % 256:
            _tick()
        yield value


class Variable(dict[str, Any]):
    """A template variable's fields (`letter`, `mailbox`, ...): a dict that knows the variable's name, so
    that a field it lacks is "'letter' has no attribute 'sujbect'", not "'dict object' has ...". The name
    is private (a template cannot read it: the sandbox refuses `_` attributes)."""

    __slots__ = ("_variable",)

    def __init__(self, name: str, fields: Mapping[str, Any]) -> None:
        super().__init__(fields)
        self._variable = name


class _Undefined(StrictUndefined):
    """StrictUndefined (any use is an error), naming the variable a missing field was looked up in."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        owner, name = self._undefined_obj, self._undefined_name
        if not self._undefined_hint and isinstance(owner, Variable):
            what = "attribute" if isinstance(name, str) else "element"
            return f"{owner._variable!r} has no {what} {name!r}"
        return super()._undefined_message


class Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, autoescape: bool) -> None:
        super().__init__(undefined=_Undefined, autoescape=autoescape, keep_trailing_newline=True)
        self.globals["range"] = _range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > MAX_CHARS
                ):
                    raise _too_large("a value")
        elif operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise _too_large("a number")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        return super().call(__context, __obj, *args, **kwargs)


def render_limited(template: Template, variables: dict[str, Any], seconds: float = MAX_SECONDS) -> str:
    """`template` rendered with `variables` within the time and size limits; TemplateError beyond them."""
    deadline = _deadline.set(time.monotonic() + seconds)
    limit = _limit.set(seconds)
    try:
        made: list[str] = []
        size = 0
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > MAX_CHARS:
                raise _too_large("the reply")
            _tick()
            made.append(chunk)
        return "".join(made)
    finally:
        _deadline.reset(deadline)
        _limit.reset(limit)
