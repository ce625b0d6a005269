"""Pure: the waits between tries of a reply's delivery or filing (bounded exponential backoff)."""

from __future__ import annotations

__all__ = ["MAX_WAIT_SECONDS", "retry_delays"]

MAX_WAIT_SECONDS = 300.0
"""No single wait is longer: the stream stands still meanwhile."""


def retry_delays(attempts: int, first_seconds: float, cap: float = MAX_WAIT_SECONDS) -> tuple[float, ...]:
    """The waits before the 2nd, 3rd, ... of `attempts` tries: `first_seconds`, then doubling, each at
    most `cap`. One try (or fewer) has no waits."""
    return tuple(min(first_seconds * 2**n, cap) for n in range(max(attempts - 1, 0)))
