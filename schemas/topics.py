"""Topic names: the one place that says which event travels where and how it is keyed.

Every topic of the pipeline has the same number of partitions; keys are given per topic below. A stream
worker writes what it makes from a message to the partition that message came from (its key is still the
one named here), so an instance's outputs, and what it must remember of them, sit in the partitions it
owns.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_TOPICS",
    "CASES",
    "CONFIG",
    "CONFIG_HISTORY",
    "DEAD_LETTERS",
    "INGEST_CHECKPOINTS",
    "INGEST_HEALTH",
    "LEADS",
    "LEDGERS",
    "LETTERS_DECIDED",
    "LETTERS_RECEIVED",
    "LETTERS_SHARED",
    "LETTERS_THREADED",
    "LETTER_LINKS",
    "REPLIES_REQUESTED",
    "REPLY_OUTCOMES",
    "TopicSpec",
]


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name, what its key is, whether Kafka compacts it, and whether it keeps every message.

    Records (leads, cases, reply outcomes) are kept for good: downstream systems rebuild from them, and
    the workers read them back to know what they already did, so they must outlive the letters.
    """

    name: str
    key: str
    compacted: bool = False
    kept_forever: bool = False


LETTERS_RECEIVED = TopicSpec("mailroom.letters.received.v1", key="mailbox id")
"""LetterReceived: ingest -> matcher. Raw bytes plus parsed header fields."""

LETTERS_THREADED = TopicSpec("mailroom.letters.threaded.v1", key="mailbox id")
"""LetterThreaded: matcher -> converter. The parsed letter and its place in a thread."""

LETTERS_SHARED = TopicSpec("mailroom.letters.shared.v1", key="mailbox id")
"""LetterShared: matcher -> notifiers (public contract). Who may see each letter."""

LETTERS_DECIDED = TopicSpec("mailroom.letters.decided.v1", key="mailbox id")
"""LetterDecided: matcher -> auditors. Which rules matched and why a letter got no reply."""

REPLIES_REQUESTED = TopicSpec("mailroom.replies.requested.v1", key="mailbox id")
"""ReplyRequested: matcher (auto-replies) and downstream systems (employees' replies) -> responder."""

REPLY_OUTCOMES = TopicSpec("mailroom.replies.outcomes.v1", key="reply id", kept_forever=True)
"""ReplySent | ReplyFailed, then ReplyFiled | ReplyFilingFailed (the copy in the Sent folder): responder ->
everyone. The responder reads it back: it is its memory of what was sent and filed."""

LEADS = TopicSpec("mailroom.leads.v1", key="lead id", kept_forever=True)
"""LeadCreated: converter -> downstream CRMs (public contract)."""

CASES = TopicSpec("mailroom.cases.v1", key="case id", kept_forever=True)
"""CaseCreated: converter -> downstream CRMs (public contract)."""

LETTER_LINKS = TopicSpec("mailroom.letter-links.v1", key="record id", kept_forever=True)
"""LetterLinked: converter -> downstream CRMs (public contract). Follow-up letters of a lead's or case's
thread."""

DEAD_LETTERS = TopicSpec("mailroom.dead-letters.v1", key="source key")
"""DeadLetter: any worker -> operators. What could not be processed, with the reason and original bytes."""

INGEST_CHECKPOINTS = TopicSpec("mailroom.ingest.checkpoints.v1", key="mailbox id/folder", compacted=True)
"""IngestCheckpoint: ingest's own progress per mailbox folder (UIDVALIDITY and last UID read)."""

INGEST_HEALTH = TopicSpec("mailroom.ingest.health.v1", key="mailbox id", compacted=True)
"""MailboxHealth: ingest -> operators, `mailroom mailboxes status`, metrics, the web admin."""

CONFIG = TopicSpec("mailroom.config.v1", key="mailbox id, or template:<name>", compacted=True)
"""MailboxVersion | TemplateVersion: the configuration, the latest version of each mailbox and named
template (a tombstone deletes one); `mailroom config apply` writes it, every worker follows it. Ingest
processes also share its partitions in one consumer group: a process reads the mailboxes whose key falls
into the partitions it is assigned, so starting or stopping one spreads the mailboxes anew."""

CONFIG_HISTORY = TopicSpec(
    "mailroom.config.history.v1", key="mailbox id, or template:<name>", kept_forever=True
)
"""MailboxVersion | TemplateVersion | ConfigRemoved: every version ever published, for `mailroom config
history` and auditors (the configuration topic is compacted and keeps only the latest)."""

LEDGERS = {
    stage: TopicSpec(f"mailroom.{stage}.ledger.v1", key="fact id", kept_forever=True)
    for stage in ("matcher", "converter", "responder")
}
"""What each stream worker remembers of what it did (small facts: ids, threads, final outcomes), with
checkpoints saying up to where its outputs are certainly on the broker: the worker's own memory, read
back for the partitions it owns when it gets them. Internal: not part of the public contract."""


ALL_TOPICS = (
    LETTERS_RECEIVED,
    LETTERS_THREADED,
    LETTERS_SHARED,
    LETTERS_DECIDED,
    REPLIES_REQUESTED,
    REPLY_OUTCOMES,
    LEADS,
    CASES,
    LETTER_LINKS,
    DEAD_LETTERS,
    INGEST_CHECKPOINTS,
    INGEST_HEALTH,
    CONFIG,
    CONFIG_HISTORY,
    *LEDGERS.values(),
)
