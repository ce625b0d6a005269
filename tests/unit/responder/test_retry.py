"""The waits between tries: exponential from the first, bounded in number and in length."""

from __future__ import annotations

import pytest

from responder.retry import MAX_WAIT_SECONDS, retry_delays


@pytest.mark.parametrize(
    ("attempts", "first", "expected"),
    [
        (1, 1.0, ()),
        (2, 1.0, (1.0,)),
        (4, 1.0, (1.0, 2.0, 4.0)),
        (5, 0.5, (0.5, 1.0, 2.0, 4.0)),
        (3, 200.0, (200.0, MAX_WAIT_SECONDS)),
        (0, 1.0, ()),
    ],
)
def test_retry_delays(attempts: int, first: float, expected: tuple[float, ...]) -> None:
    assert retry_delays(attempts, first) == expected


def test_the_longest_schedule_the_settings_allow_is_bounded() -> None:
    delays = retry_delays(20, 1.0)

    assert len(delays) == 19
    assert max(delays) == MAX_WAIT_SECONDS
    assert list(delays) == sorted(delays)
