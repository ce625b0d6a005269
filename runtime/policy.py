"""The one error policy of every consumer loop: retriable errors retry the same message with a capped
backoff (nothing is skipped while, say, the broker restarts); any other error dead-letters it.

asyncio only: the stream loop (`runtime/stream.py`) calls `process_message` for each consumed message,
`process_guarded` underneath.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from schemas.events import DEAD_LETTER_MAX_BYTES, DeadLetter, LetterReceived

__all__ = ["MAX_BACKOFF_SECONDS", "Source", "process_guarded", "process_message"]

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


@dataclass(frozen=True)
class Source:
    """A consumed message: which worker read it, and where."""

    stage: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


async def process_message(
    source: Source,
    handle: Callable[[], Awaitable[None]],
    publish_dead: Callable[[DeadLetter], Awaitable[None]],
    letter: Callable[[], LetterReceived | None] = lambda: None,
    max_bytes: int = DEAD_LETTER_MAX_BYTES,
) -> bool:
    """Handles one message under the error policy; a message that fails for good becomes a DeadLetter
    keeping the raw letter when `letter` can give it (else the message's bytes)."""

    async def dead_letter(exc: BaseException) -> None:
        found = letter()
        await publish_dead(
            DeadLetter.of(
                source.stage,
                exc,
                source.topic,
                found.raw if found else source.value or b"",
                "letter" if found else "event",
                partition=source.partition,
                offset=source.offset,
                key=source.key,
                mailbox_id=found.mailbox_id if found else None,
                max_bytes=max_bytes,
            )
        )

    return await process_guarded(source.where(), handle, dead_letter)
