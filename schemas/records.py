"""Pure: which letters make a lead or a case, and that record's kind and id. The converter makes the
record, the matcher names it to reply templates (`record`); both ask here, so they cannot disagree."""

from __future__ import annotations

from typing import Literal

from schemas.config import CaseProcessing, LeadProcessing, Mailbox, NoProcessing
from schemas.events import LetterThreaded
from schemas.ids import case_id, lead_id

__all__ = ["RecordType", "makes_record", "record_of_thread"]

RecordType = Literal["lead", "case"]


def record_of_thread(mailbox: Mailbox, thread_id: str) -> tuple[RecordType, str] | None:
    """The kind and id of the record a thread of this mailbox has or would have (None: no processing)."""
    processing = mailbox.processing
    if isinstance(processing, LeadProcessing):
        return "lead", lead_id(mailbox.id, thread_id)
    if isinstance(processing, CaseProcessing):
        return "case", case_id(mailbox.id, thread_id)
    return None


def makes_record(letter: LetterThreaded, mailbox: Mailbox) -> bool:
    """Only the first letter of a thread, only in a mailbox that converts, and (unless the mailbox sets
    `ignore_automated: false`) only a letter a person wrote."""
    processing = mailbox.processing
    if not letter.starts_thread or isinstance(processing, NoProcessing):
        return False
    return not (processing.ignore_automated and letter.automated_because)
