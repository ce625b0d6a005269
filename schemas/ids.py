"""Deterministic ids: the same facts always give the same id, so a replay never makes a new one.

Ids are UUIDv5 over a fixed namespace and a kind-tagged, unit-separated list of parts. Downstream systems
may compute them too (e.g. a lead id from a mailbox id and a thread's root Message-ID).
"""

from __future__ import annotations

import uuid

__all__ = [
    "LOOP_MARKER_HEADER",
    "case_id",
    "deterministic_id",
    "lead_id",
    "letter_id",
    "reply_id",
    "reply_message_id",
]

LOOP_MARKER_HEADER = "X-Loop"
"""Every reply mailroom sends carries this header with the mailbox's address; never answered."""

_NAMESPACE = uuid.UUID("6f1c1f0e-8a43-5c55-9a3e-6d61696c726f")


def deterministic_id(kind: str, *parts: object) -> str:
    """A UUID string for `kind` and `parts`; equal inputs give equal ids."""
    text = "\x1f".join([kind, *(str(p) for p in parts)])
    return str(uuid.uuid5(_NAMESPACE, text))


def letter_id(mailbox_id: str, folder: str, uidvalidity: int, uid: int) -> str:
    """The id of one letter as ingest read it: a re-read of the same IMAP message gives the same id."""
    return deterministic_id("letter", mailbox_id, folder, uidvalidity, uid)


def lead_id(mailbox_id: str, thread_id: str) -> str:
    """One lead per thread of a mailbox."""
    return deterministic_id("lead", mailbox_id, thread_id)


def case_id(mailbox_id: str, thread_id: str) -> str:
    """One case per thread of a mailbox."""
    return deterministic_id("case", mailbox_id, thread_id)


def reply_id(mailbox_id: str, message_id: str, rule_id: str) -> str:
    """One auto-reply per (mailbox, incoming Message-ID, rule): the same letter twice gets one reply."""
    return deterministic_id("auto-reply", mailbox_id, message_id, rule_id)


def reply_message_id(reply_id: str, mailbox_email: str) -> str:
    """The Message-ID (without brackets) of the reply `reply_id`: a receiver can drop a duplicate by it."""
    domain = mailbox_email.rpartition("@")[2] or "mailroom.invalid"
    return f"reply-{reply_id}@{domain}"
