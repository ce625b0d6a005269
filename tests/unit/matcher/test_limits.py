"""Reply limits: counted in answered letters, per thread and per recipient, in letter time; a letter's
own earlier replies never count against it, so a replay decides the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from matcher.limits import ReplyHistory
from schemas.config import AutoReplyLimits, ReplyTemplate
from schemas.events import Address, ReplyRequested

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ANN = "ann@customer.example"


def _reply(message_id: str, thread: str, at: datetime, to: str = ANN, rule: str = "ack") -> ReplyRequested:
    rid = f"{message_id}/{rule}"
    return ReplyRequested(
        event_id=rid,
        occurred_at=at,
        reply_id=rid,
        mailbox_id="support",
        rule_id=rule,
        rule_name=rule,
        template=ReplyTemplate(subject="s", body="b"),
        to=(Address(address=to),),
        in_reply_to=message_id,
        thread_id=thread,
        mailbox_label="Support",
        mailbox_email="support@acme.example",
    )


def _limit(
    history: ReplyHistory, message_id: str, thread: str, at: datetime, limits: AutoReplyLimits, to: str = ANN
) -> str | None:
    return history.limit("support", limits, thread, to, message_id, at)


def test_one_answered_letter_per_thread_by_default_however_many_replies_it_got() -> None:
    history = ReplyHistory()
    history.remember(_reply("a", "t1", T0, rule="ack"))
    history.remember(_reply("a", "t1", T0, rule="urgent"))  # all_matching: two replies, one answer

    assert _limit(history, "a", "t1", T0, AutoReplyLimits()) is None  # the letter itself, again
    assert "1 letter(s) of this thread already answered (limit 1)" == _limit(
        history, "b", "t1", T0 + timedelta(minutes=5), AutoReplyLimits()
    )
    assert _limit(history, "b", "t1", T0, AutoReplyLimits(per_thread=2)) is None
    assert _limit(history, "c", "t2", T0, AutoReplyLimits()) is None


@pytest.mark.parametrize(
    ("answered", "at", "limits", "expected"),
    [
        (2, timedelta(minutes=10), AutoReplyLimits(), None),
        (
            3,
            timedelta(minutes=10),
            AutoReplyLimits(),
            "3 letter(s) from ann@customer.example answered in the last hour (limit 3)",
        ),
        (3, timedelta(minutes=70), AutoReplyLimits(), None),
        (
            10,
            timedelta(hours=20),
            AutoReplyLimits(per_sender_per_hour=50),
            "10 letter(s) from ann@customer.example answered in the last day (limit 10)",
        ),
        (10, timedelta(hours=30), AutoReplyLimits(per_sender_per_hour=50), None),
    ],
    ids=[
        "under the hourly limit",
        "at the hourly limit",
        "an hour later",
        "at the daily limit",
        "a day later",
    ],
)
def test_letters_answered_per_recipient_in_the_hour_and_the_day(
    answered: int, at: timedelta, limits: AutoReplyLimits, expected: str | None
) -> None:
    history = ReplyHistory()
    for n in range(answered):
        history.remember(_reply(f"m{n}", f"t{n}", T0 + timedelta(seconds=n)))

    assert _limit(history, "new", "t-new", T0 + at, limits) == expected


def test_the_recipient_is_compared_without_case_and_others_do_not_count() -> None:
    history = ReplyHistory()
    for n in range(3):
        history.remember(_reply(f"m{n}", f"t{n}", T0, to="Ann@Customer.Example"))

    assert _limit(history, "new", "t-new", T0, AutoReplyLimits()) is not None
    assert _limit(history, "new", "t-new", T0, AutoReplyLimits(), to="bob@customer.example") is None


def test_a_replay_of_the_allowed_letters_is_allowed_again_and_the_limited_stay_limited() -> None:
    """First run: five letters at the same second, the first three answered. A replay sees all three
    replies already in the history."""
    limits = AutoReplyLimits()
    history = ReplyHistory()
    first = []
    for n in range(5):
        reason = _limit(history, f"m{n}", f"t{n}", T0, limits)
        first.append(reason)
        if reason is None:
            history.remember(_reply(f"m{n}", f"t{n}", T0))

    again = [_limit(history, f"m{n}", f"t{n}", T0, limits) for n in range(5)]

    assert [r is None for r in first] == [True, True, True, False, False]
    assert [r is None for r in again] == [r is None for r in first]


def test_later_letters_do_not_count_against_an_earlier_one() -> None:
    history = ReplyHistory()
    for n in range(3):
        history.remember(_reply(f"later{n}", f"t{n}", T0 + timedelta(minutes=30)))

    assert _limit(history, "early", "t-early", T0, AutoReplyLimits()) is None
