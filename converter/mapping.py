"""Pure: maps the first letter of a thread to a Lead or a Case, per the mailbox's processing settings."""

from __future__ import annotations

from datetime import datetime

from schemas.config import CaseProcessing, LeadProcessing, Mailbox, NoProcessing
from schemas.events import Address, CaseCreated, LeadCreated, LetterThreaded
from schemas.ids import case_id, lead_id

__all__ = ["NO_SUBJECT", "record_for", "split_name"]

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


def record_for(letter: LetterThreaded, mailbox: Mailbox, now: datetime) -> LeadCreated | CaseCreated | None:
    """The record a letter creates: only the first letter of a thread, only for lead or case processing,
    and (unless the mailbox says otherwise) only from letters a person wrote."""
    processing = mailbox.processing
    if not letter.starts_thread or isinstance(processing, NoProcessing):
        return None
    if processing.ignore_automated and letter.automated_because:
        return None
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
