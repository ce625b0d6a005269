"""How a process logs: text for people (the default), or one JSON object a line for a log pipeline
(MAILROOM_LOG_FORMAT=json).

A JSON line carries, besides time, level, logger and message, where the message under way came from
(topic, partition, offset), its mailbox and the letter's Message-ID when the stream loop or a handler
said so with `context(...)`. Letters' bodies are never logged at INFO.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["JsonFormatter", "configure", "context", "current", "note", "quiet_kafka"]

_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("mailroom_log_context", default={})  # noqa: B039  # never mutated
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def current() -> dict[str, Any]:
    """What the logs of this task say about the message under way."""
    return _CONTEXT.get()


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Adds `fields` (topic, partition, offset, mailbox, message_id, ...) to every log line written
    inside, in this task and the tasks it starts; None values are left out."""
    token = _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def note(**fields: Any) -> None:
    """Adds `fields` to the log lines of the rest of the enclosing `context(...)` block (a handler says
    which letter it found in the message the stream loop gave it)."""
    _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in fields.items() if v is not None}})


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_CONTEXT.get(),
        }
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str, format: Literal["text", "json"] = "text") -> None:
    """Sets up the root logger on stderr; the Kafka clients say only warnings and worse."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def quiet_kafka() -> None:
    """For commands and the admin, which say once themselves that the broker cannot be reached: the Kafka
    clients, which log each failed try, say only what is critical (unless the level is DEBUG)."""
    if logging.getLogger().level > logging.DEBUG:
        for noisy in ("kafka", "aiokafka"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
