"""The one error policy: retriable errors retry with a capped backoff; others are dead-lettered once."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest

from runtime.policy import MAX_BACKOFF_SECONDS, Source, process_guarded, process_message
from schemas.errors import MailroomError
from schemas.events import DeadLetter


class _Flaky(MailroomError):
    """Stands in for a broker restart or an SMTP 4xx."""

    retriable: ClassVar[bool] = True


class _Broken(MailroomError):
    """Stands in for a template error or an SMTP 5xx."""


class _PerInstance(Exception):
    def __init__(self, retriable: bool) -> None:
        super().__init__(f"retriable={retriable}")
        self.retriable = retriable


class _Run:
    """Feeds `process_guarded` a handler that raises the given errors in turn, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.sleeps: list[float] = []
        self.dead: list[BaseException] = []

    async def handle(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    async def dead_letter(self, exc: BaseException) -> None:
        self.dead.append(exc)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def __call__(self) -> bool:
        return asyncio.run(process_guarded("topic[0]@1", self.handle, self.dead_letter, sleep=self.sleep))


def test_success_is_handled_once() -> None:
    run = _Run()

    assert run() is True
    assert (run.calls, run.sleeps, run.dead) == (1, [], [])


@pytest.mark.parametrize(
    ("errors", "sleeps"),
    [
        ([_Flaky("down")], [0.5]),
        ([_Flaky("down"), _Flaky("down"), _Flaky("down")], [0.5, 1.0, 2.0]),
        ([_PerInstance(retriable=True)], [0.5]),
        ([_Flaky("down")] * 10, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]),
    ],
    ids=["once", "three times", "per instance", "capped"],
)
def test_retriable_errors_retry_the_same_message_with_backoff(
    errors: list[BaseException], sleeps: list[float]
) -> None:
    run = _Run(*errors)

    assert run() is True
    assert run.calls == len(errors) + 1
    assert run.sleeps == sleeps
    assert max(run.sleeps) <= MAX_BACKOFF_SECONDS
    assert run.dead == []


@pytest.mark.parametrize(
    "error",
    [_Broken("template"), ValueError("bad"), _PerInstance(retriable=False), KeyError("k")],
    ids=["mailroom error", "plain error", "per instance", "key error"],
)
def test_other_errors_are_dead_lettered_once_without_retrying(error: BaseException) -> None:
    run = _Run(error)

    assert run() is False
    assert run.calls == 1
    assert run.sleeps == []
    assert run.dead == [error]


def test_a_permanent_error_after_retries_is_dead_lettered() -> None:
    broken = _Broken("gave up")
    run = _Run(_Flaky("down"), broken)

    assert run() is False
    assert run.calls == 2
    assert run.sleeps == [0.5]
    assert run.dead == [broken]


@pytest.mark.parametrize(
    "error", [asyncio.CancelledError(), KeyboardInterrupt()], ids=["cancel", "interrupt"]
)
def test_shutdown_signals_pass_through_and_dead_letter_nothing(error: BaseException) -> None:
    run = _Run(error)

    with pytest.raises(type(error)):
        run()
    assert run.dead == []


def _source(value: bytes | None = b'{"not": "an event"}') -> Source:
    return Source("matcher", "mailroom.letters.received.v1", 1, 42, b"support", value)


def _run_message(handle: Any, letter: Any = lambda: None) -> tuple[bool, list[DeadLetter]]:
    dead: list[DeadLetter] = []

    async def publish(d: DeadLetter) -> None:
        dead.append(d)

    return asyncio.run(process_message(_source(), handle, publish, letter)), dead


def test_a_message_that_fails_for_good_is_dead_lettered_with_its_own_bytes() -> None:
    async def handle() -> None:
        raise ValueError("not a letter")

    handled, dead = _run_message(handle)

    assert handled is False
    assert [(d.stage, d.reason, d.error_type, d.original, d.original_kind) for d in dead] == [
        ("matcher", "not a letter", "ValueError", b'{"not": "an event"}', "event")
    ]
    assert (dead[0].source_topic, dead[0].source_partition, dead[0].source_offset, dead[0].source_key) == (
        "mailroom.letters.received.v1",
        1,
        42,
        "support",
    )


def test_a_letter_that_fails_for_good_is_dead_lettered_with_the_raw_letter() -> None:
    from ingest.parse import letter_event
    from tests.unit.builders import NOW, letter_bytes

    received = letter_event("support", "acme", "INBOX", 7, 3, NOW, letter_bytes())

    async def handle() -> None:
        raise KeyError("boom")

    _, dead = _run_message(handle, letter=lambda: received)

    assert (dead[0].original, dead[0].original_kind, dead[0].mailbox_id) == (
        received.raw,
        "letter",
        "support",
    )


def test_a_handled_message_makes_no_dead_letter() -> None:
    async def handle() -> None:
        return None

    assert _run_message(handle) == (True, [])
