"""I/O edge for operators: the replies that failed or wait for another try, and sending failed ones again.

    mailroom replies list [--json]              replies whose sending failed for good, or is deferred
    mailroom replies resend REPLY_ID ... [--json]   send failed replies again

`list` reads the outcomes topic (the latest outcome of each reply); `resend` puts a failed reply's request
back on the requests topic marked `resend: true`, so the responder sends it again; a reply sent, or still
being tried, is left alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from kafka import KafkaProducer

from runtime.settings import KafkaSettings
from runtime.snapshot import read_topic
from schemas import topics
from schemas.errors import EventError
from schemas.events import ReplyDeferred, ReplyFailed, ReplyRequested, event_type_of, parse_event, utcnow

__all__ = ["ReplyState", "failed_replies", "render_table", "resend"]


@dataclass(frozen=True)
class ReplyState:
    """A reply whose latest outcome is a failure or a deferral."""

    reply_id: str
    mailbox_id: str
    state: str
    """"failed" or "deferred"."""
    reason: str
    smtp_code: int | None
    attempts: int
    at: str
    """When it failed, or when it is tried again (ISO 8601)."""


def failed_replies(kafka: KafkaSettings) -> list[ReplyState]:
    """Every reply whose latest outcome is ReplyFailed or ReplyDeferred, oldest first."""
    latest: dict[str, tuple[str, bytes]] = {}
    for record in read_topic(kafka, topics.REPLY_OUTCOMES):
        kind = event_type_of(record.value)
        reply = record.key.decode("utf-8", "replace") if record.key else None
        if kind and reply:
            latest[reply] = (kind, record.value)
    found = []
    for kind, data in latest.values():
        event: ReplyFailed | ReplyDeferred
        if kind == ReplyFailed.__name__:
            event = parse_event(ReplyFailed, data)
            state, at = "failed", event.occurred_at
        elif kind == ReplyDeferred.__name__:
            event = parse_event(ReplyDeferred, data)
            state, at = "deferred", event.retry_at
        else:
            continue
        found.append(
            ReplyState(
                event.reply_id,
                event.mailbox_id,
                state,
                event.reason,
                event.smtp_code,
                event.attempts,
                at.isoformat(),
            )
        )
    return sorted(found, key=lambda s: s.at)


def resend(kafka: KafkaSettings, reply_ids: list[str]) -> dict[str, str]:
    """Puts each failed reply's request back, marked `resend`; reply id -> what was done."""
    states = {s.reply_id: s for s in failed_replies(kafka)}
    wanted = set(reply_ids)
    requests: dict[str, tuple[int, ReplyRequested]] = {}
    for record in read_topic(kafka, topics.REPLIES_REQUESTED):
        if not wanted.intersection(_reply_ids_in(record.value)):
            continue
        try:
            request = parse_event(ReplyRequested, record.value)
        except EventError:
            continue
        if request.reply_id in wanted:
            requests[request.reply_id] = (record.partition, request)
    done: dict[str, str] = {}
    producer = KafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, max_request_size=kafka.max_message_bytes
    )
    try:
        for reply_id in reply_ids:
            state = states.get(reply_id)
            if state is None or state.state != "failed":
                done[reply_id] = "not resent: " + (
                    "it is being tried again" if state else "no failure is known for it (sent, or unknown)"
                )
                continue
            if reply_id not in requests:
                done[reply_id] = "not resent: its request is no longer on the requests topic"
                continue
            partition, request = requests[reply_id]
            again = request.model_copy(update={"resend": True, "produced_at": utcnow()})
            producer.send(
                kafka.topic(topics.REPLIES_REQUESTED),
                key=request.mailbox_id.encode(),
                value=again.to_bytes(),
                partition=partition,
            ).get(timeout=30)
            done[reply_id] = "resent: the responder sends it again"
    finally:
        producer.close()
    return done


def _reply_ids_in(data: bytes) -> list[str]:
    """Cheap look at a request's reply id before the whole event is validated."""
    try:
        value = json.loads(data)
    except ValueError:
        return []
    return [str(value["reply_id"])] if isinstance(value, dict) and "reply_id" in value else []


def render_table(states: list[ReplyState]) -> str:
    """The replies as a table people read."""
    if not states:
        return "no failed or deferred replies"
    rows = [("REPLY", "MAILBOX", "STATE", "CODE", "TRIES", "AT (UTC)", "REASON")]
    for s in states:
        rows.append(
            (
                s.reply_id,
                s.mailbox_id,
                s.state,
                str(s.smtp_code or ""),
                str(s.attempts),
                s.at[:19],
                s.reason[:80],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


def as_json(states: list[ReplyState]) -> str:
    return json.dumps([asdict(s) for s in states], indent=2)
