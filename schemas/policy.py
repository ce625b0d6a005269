"""The one error policy of every consumer loop: retriable errors retry the same message with a capped
backoff (nothing is skipped while, say, the broker restarts); any other error dead-letters it.

asyncio only, so that each worker's stream code calls it the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["MAX_BACKOFF_SECONDS", "process_guarded"]

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0


async def process_guarded(
    where: str,
    handle: Callable[[], Awaitable[None]],
    dead_letter: Callable[[BaseException], Awaitable[None]],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Runs `handle` until it succeeds (True) or fails for good and is dead-lettered (False)."""
    backoff = 0.5
    while True:
        try:
            await handle()
            return True
        except Exception as exc:  # the one broad except of a consumer loop
            if getattr(exc, "retriable", False):
                logger.warning("%s: %s: %s; retrying in %.1f s", where, type(exc).__name__, exc, backoff)
                await sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            logger.error("%s: dead-lettered: %s: %s", where, type(exc).__name__, exc)
            await dead_letter(exc)
            return False
