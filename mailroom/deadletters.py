"""`mailroom dead-letters list | show ID | reprocess ID...`: what could not be processed, and handing it back
to the stage that failed once the cause is fixed (a configuration, a template, a server).

A dead letter is handed back as it first came: a stream worker's input message is published again, the
same bytes, key and partition, read from where the dead letter says it was; a letter ingest could not make
an event of is made into its LetterReceived again (its id comes from mailbox, folder, UIDVALIDITY and UID).
Every id downstream is derived from the facts, so a second reprocess sends and makes nothing twice.

Pure: `target_of`, `rows`, `render_list`, `render_show`. I/O at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from ingest.parse import letter_event
from mailroom.tables import table, utc_text
from runtime.settings import KafkaSettings
from runtime.snapshot import read_record, read_topic
from schemas import topics
from schemas.config import MailroomConfig
from schemas.errors import EventError
from schemas.events import DeadLetter, LetterReceived, parse_event

__all__ = ["Target", "read_dead_letters", "render_list", "render_show", "reprocess", "rows", "target_of"]


@dataclass(frozen=True)
class Target:
    """Where a dead letter goes back to: a topic's message (`offset` set) or an IMAP letter (`folder`)."""

    topic: str
    partition: int
    offset: int | None = None
    key: str | None = None
    mailbox_id: str | None = None
    folder: str | None = None


def target_of(dead: DeadLetter) -> Target | str:
    """Where the dead letter's original goes back to, or why it cannot."""
    if dead.error_type == "LetterTooLarge":
        return "the letter is over the size limit: it stays in its mailbox and cannot be processed"
    if dead.source_partition is None or dead.source_offset is None:
        return "the dead letter does not say where its original was"
    if dead.source_topic.startswith("imap:"):
        if dead.original_truncated or dead.original_kind != "letter":
            return "only the head of the letter was kept"
        mailbox_id, _, folder = dead.source_topic.removeprefix("imap:").partition("/")
        return Target("imap", dead.source_partition, None, mailbox_id, mailbox_id, folder)
    return Target(dead.source_topic, dead.source_partition, dead.source_offset, dead.source_key)


def rows(
    dead_letters: Iterable[DeadLetter], mailbox: str | None = None, stage: str | None = None
) -> list[dict[str, Any]]:
    found = []
    for dead in dead_letters:
        if (mailbox and dead.mailbox_id != mailbox) or (stage and dead.stage != stage):
            continue
        target = target_of(dead)
        found.append(
            {
                "id": dead.event_id,
                "at": dead.occurred_at.isoformat(),
                "stage": dead.stage,
                "mailbox": dead.mailbox_id,
                "error": dead.error_type,
                "reason": dead.reason,
                "source": f"{dead.source_topic}[{dead.source_partition}]@{dead.source_offset}",
                "original_bytes": dead.original_size
                if dead.original_size is not None
                else len(dead.original),
                "reprocessable": isinstance(target, Target),
                "why_not": None if isinstance(target, Target) else target,
            }
        )
    return found


def render_list(found: list[dict[str, Any]]) -> str:
    if not found:
        return "no dead letters"
    cells = [("ID", "WHEN (UTC)", "STAGE", "MAILBOX", "ERROR", "REPROCESS", "REASON")]
    for row in found:
        reason = " ".join(row["reason"].split())
        cells.append(
            (
                row["id"],
                row["at"][:19].replace("T", " "),
                row["stage"],
                row["mailbox"] or "-",
                row["error"],
                "yes" if row["reprocessable"] else "no",
                reason if len(reason) <= 100 else reason[:97] + "...",
            )
        )
    return "\n".join(table(cells))


def render_show(dead: DeadLetter) -> str:
    target = target_of(dead)
    lines = [
        f"id:        {dead.event_id}",
        f"when:      {utc_text(dead.occurred_at)} UTC",
        f"stage:     {dead.stage}",
        f"mailbox:   {dead.mailbox_id or '-'}",
        f"error:     {dead.error_type}",
        f"reason:    {dead.reason}",
        f"source:    {dead.source_topic}[{dead.source_partition}]@{dead.source_offset} key {dead.source_key}",
        f"original:  {dead.original_kind}, {dead.original_size or len(dead.original)} bytes"
        + (f", sha256 {dead.original_sha256}" if dead.original_sha256 else "")
        + (" (only its head is kept)" if dead.original_truncated else ""),
        f"reprocess: {'yes' if isinstance(target, Target) else 'no: ' + target}",
        "",
        dead.original[:2000].decode("utf-8", "replace"),
    ]
    return "\n".join(lines)


# -- I/O ------------------------------------------------------------------------------------------------


def read_dead_letters(kafka: KafkaSettings, timeout: float = 60.0) -> list[DeadLetter]:
    found = []
    for record in read_topic(kafka, topics.DEAD_LETTERS, timeout):
        try:
            found.append(parse_event(DeadLetter, record.value))
        except EventError:
            continue
    return found


def reprocess(
    kafka: KafkaSettings, config: MailroomConfig, dead_letters: list[DeadLetter], ids: list[str]
) -> dict[str, str]:
    """Hands each named dead letter's original back; id -> what was done (`reprocessed ...`) or why not."""
    by_id = {d.event_id: d for d in dead_letters}
    done: dict[str, str] = {}
    producer = KafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, acks="all", max_request_size=kafka.max_message_bytes
    )
    try:
        for dead_id in ids:
            dead = by_id.get(dead_id)
            if dead is None:
                done[dead_id] = "no such dead letter"
                continue
            target = target_of(dead)
            if not isinstance(target, Target):
                done[dead_id] = f"not reprocessed: {target}"
                continue
            if target.folder is not None:
                box = config.mailbox(target.mailbox_id or "")
                if box is None:
                    done[dead_id] = (
                        f"not reprocessed: mailbox {target.mailbox_id!r} is not in the configuration"
                    )
                    continue
                event: LetterReceived = letter_event(
                    box.id,
                    box.organization,
                    target.folder,
                    target.partition,
                    dead.source_offset or 0,
                    dead.occurred_at,
                    dead.original,
                )
                name = kafka.topic(topics.LETTERS_RECEIVED)
                producer.send(name, key=box.id.encode(), value=event.to_bytes()).get(timeout=60)
                done[dead_id] = f"reprocessed: LetterReceived {event.event_id} on {name}"
                continue
            record = read_record(kafka, target.topic, target.partition, target.offset or 0)
            if record is None:
                done[dead_id] = f"not reprocessed: {target.topic}[{target.partition}]@{target.offset} is gone"
                continue
            producer.send(target.topic, key=record.key, value=record.value, partition=target.partition).get(
                timeout=60
            )
            done[dead_id] = f"reprocessed: {target.topic}[{target.partition}]@{target.offset} published again"
    finally:
        producer.close(timeout=10)
    return done


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
