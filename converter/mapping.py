"""Pure: maps the first letter of a thread to a Lead or a Case, per the mailbox's processing settings,
and a later letter of the thread to a link to that record."""

from __future__ import annotations

from datetime import datetime

from schemas.config import CaseProcessing, LeadProcessing, Mailbox
from schemas.events import Address, CaseCreated, LeadCreated, LetterLinked, LetterThreaded
from schemas.ids import case_id, deterministic_id, lead_id
from schemas.records import RecordType, makes_record

__all__ = ["NO_SUBJECT", "link_for", "record_for", "split_name"]

NO_SUBJECT = "(no subject)"


def split_name(sender: Address) -> tuple[str, str]:
    """First and last name from a display name ("Ann Lee", "Lee, Ann"), else from the address's local part."""
    name = " ".join(sender.name.split())
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip(), last.strip()
    if not name:
        local = sender.address.partition("@")[0]
        name = " ".join(part for part in local.replace("_", ".").replace("-", ".").split(".") if part)
        name = name.title() if name else local
    first, _, last = name.rpartition(" ")
    return (first, last) if first else (last, "")


def link_for(letter: LetterThreaded, record_type: RecordType, record_id: str, now: datetime) -> LetterLinked:
    """Links a letter to its thread's record; the id depends on the record and the letter's Message-ID,
    so the same letter read twice (two folders, a replay) makes one link."""
    return LetterLinked(
        event_id=deterministic_id("letter-link", record_id, letter.message_id),
        occurred_at=letter.occurred_at,
        produced_at=now,
        record_type=record_type,
        record_id=record_id,
        organization=letter.organization,
        mailbox_id=letter.mailbox_id,
        letter_id=letter.letter_id,
        message_id=letter.message_id,
        thread_id=letter.thread_id,
        direction=letter.direction,
        sender=letter.sender,
        subject=letter.subject,
        date=letter.date,
    )


def record_for(letter: LetterThreaded, mailbox: Mailbox, now: datetime) -> LeadCreated | CaseCreated | None:
    """The record a letter creates: only the first letter of a thread, only for lead or case processing,
    and (unless the mailbox says otherwise) only from letters a person wrote."""
    if not makes_record(letter, mailbox):
        return None
    processing = mailbox.processing
    subject = letter.subject.strip() or NO_SUBJECT
    if isinstance(processing, LeadProcessing):
        first, last = split_name(letter.sender)
        rid = lead_id(mailbox.id, letter.thread_id)
        return LeadCreated(
            event_id=rid,
            occurred_at=letter.occurred_at,
            produced_at=now,
            lead_id=rid,
            organization=mailbox.organization,
            mailbox_id=mailbox.id,
            mailbox_email=mailbox.email,
            name=subject,
            first_name=first,
            last_name=last,
            email=letter.sender.address,
            notes=letter.text_body,
            owner=processing.owner,
            source=processing.source,
            channel=processing.channel,
            letter_id=letter.letter_id,
            message_id=letter.message_id,
            thread_id=letter.thread_id,
        )
    if isinstance(processing, CaseProcessing):
        rid = case_id(mailbox.id, letter.thread_id)
        return CaseCreated(
            event_id=rid,
            occurred_at=letter.occurred_at,
            produced_at=now,
            case_id=rid,
            organization=mailbox.organization,
            mailbox_id=mailbox.id,
            mailbox_email=mailbox.email,
            subject=subject,
            description=letter.text_body,
            reporter_email=letter.sender.address,
            owner=processing.owner,
            assignee=processing.assignee,
            status=processing.status,
            priority=processing.priority,
            tags=processing.tags,
            letter_id=letter.letter_id,
            message_id=letter.message_id,
            thread_id=letter.thread_id,
        )
    return None
