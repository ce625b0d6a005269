"""Pure: turns one received letter into what must happen next: its thread, its decision and its replies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from matcher.errors import UnprocessableLetterError
from matcher.languages import letter_languages
from matcher.letter import ParsedLetter, parse_letter
from matcher.limits import ReplyHistory
from matcher.loops import auto_reply_block, reply_recipient, sent_by_mailroom
from matcher.rules import CompiledRules, view_of
from matcher.threads import ThreadIndex
from schemas.config import AutoResponseRule, Mailbox, MailroomConfig, ReplyTemplate
from schemas.events import (
    Address,
    LetterDecided,
    LetterReceived,
    LetterShared,
    LetterThreaded,
    ReplyRequested,
)
from schemas.ids import deterministic_id, reply_id
from schemas.records import makes_record, record_of_thread

__all__ = ["Outcome", "created_record", "decide", "letter_fingerprint", "names_text_body", "reply_subject"]

_REPLY_PREFIXES = ("re:", "aw:", "sv:", "antw:")


@dataclass(frozen=True)
class Outcome:
    threaded: LetterThreaded
    shared: LetterShared
    decided: LetterDecided
    replies: tuple[ReplyRequested, ...]


def decide(
    letter: LetterReceived,
    mailbox: Mailbox,
    config: MailroomConfig,
    rules: CompiledRules,
    threads: ThreadIndex,
    history: ReplyHistory,
    now: datetime,
) -> Outcome:
    """The letter's events; `threads` and `history` are only read (the caller remembers the outcome once
    it is sent)."""
    head = letter.headers
    sender = head.from_ or (head.reply_to[0] if head.reply_to else None)
    if sender is None:
        raise UnprocessableLetterError(
            f"letter {head.message_id} in {mailbox.id}/{letter.folder} (UID {letter.uid}) has no sender "
            f"address (no usable From, Sender or Reply-To); defects: {', '.join(letter.defects) or 'none'}"
        )
    parsed = parse_letter(letter.raw)
    fingerprint = letter_fingerprint(sender, head.date, head.subject, parsed.text_body)
    # A web form may send every letter with one Message-ID: another letter under a known id is its own.
    key = threads.key_of(mailbox.id, head.message_id, fingerprint)
    place = threads.place(mailbox.id, key, head.in_reply_to, head.references)
    own = config.mailbox_addresses(mailbox.organization)
    blocked = auto_reply_block(parsed, sender, own, mailbox.limits)
    threaded = LetterThreaded(
        event_id=deterministic_id("letter-threaded", letter.event_id),
        occurred_at=letter.occurred_at,
        produced_at=now,
        mailbox_id=mailbox.id,
        organization=mailbox.organization,
        letter_id=letter.event_id,
        message_id=head.message_id,
        letter_key=key,
        fingerprint=fingerprint,
        thread_id=place.thread_id,
        starts_thread=place.starts_thread,
        in_reply_to=head.in_reply_to,
        references=head.references,
        direction="outgoing" if sent_by_mailroom(parsed, sender, own) else "incoming",
        automated_because=blocked,
        sender=sender,
        to=head.to,
        cc=head.cc,
        subject=head.subject,
        date=head.date,
    )
    if makes_record(threaded, mailbox):  # the body travels on only to become the record's notes
        threaded = threaded.model_copy(update={"text_body": parsed.text_body})
    shared = LetterShared(
        event_id=deterministic_id("letter-shared", letter.event_id),
        occurred_at=letter.occurred_at,
        produced_at=now,
        mailbox_id=mailbox.id,
        organization=mailbox.organization,
        mailbox_email=mailbox.email,
        letter_id=letter.event_id,
        message_id=head.message_id,
        thread_id=place.thread_id,
        subject=head.subject,
        sender=sender,
        date=head.date,
        users=mailbox.authorized.users,
        roles=mailbox.authorized.roles,
    )
    outcomes, chosen = ([], []) if blocked else rules.evaluate(view_of(letter, parsed, sender))
    record = created_record(threaded, mailbox)
    recipient = reply_recipient(head.reply_to, sender, own, mailbox.limits)
    languages = letter_languages(parsed.headers)
    wanted = [
        _reply(letter, mailbox, config, rule, parsed, place.thread_id, record, recipient, key, languages, now)
        for rule in chosen
    ]
    limited_by = (
        history.limit(
            mailbox.id,
            mailbox.limits,
            place.thread_id,
            recipient.address,
            head.message_id,
            letter.occurred_at,
        )
        if wanted
        else None
    )
    replies = () if limited_by else tuple(wanted)
    limited = tuple(f"{r.rule_id}: {limited_by}" for r in wanted) if limited_by else ()
    decided = LetterDecided(
        event_id=deterministic_id("letter-decided", letter.event_id),
        occurred_at=now,
        produced_at=now,
        mailbox_id=mailbox.id,
        letter_id=letter.event_id,
        message_id=head.message_id,
        subject=head.subject,
        sender=sender.address,
        rules=tuple(outcomes),
        reply_ids=tuple(r.reply_id for r in replies),
        limited=limited,
        skipped_because=blocked,
        handled_as=key if key != head.message_id else None,
    )
    return Outcome(threaded, shared, decided, replies)


def letter_fingerprint(sender: Address, date: datetime | None, subject: str, text: str) -> str:
    """What copies of one letter share and two letters under one Message-ID do not (hex SHA-256)."""
    parts = (sender.address.lower(), date.isoformat() if date else "", subject, text)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def created_record(threaded: LetterThreaded, mailbox: Mailbox) -> dict[str, str] | None:
    """The lead or case the converter makes from this letter, as templates see it (`record`); the same
    rule and id as the converter's (schemas.records)."""
    kind = record_of_thread(mailbox, threaded.thread_id) if makes_record(threaded, mailbox) else None
    return {"type": kind[0], "id": kind[1]} if kind else None


def reply_subject(subject: str) -> str:
    """`Re: <subject>`, without stacking a second prefix on a subject that has one."""
    subject = subject.strip()
    if subject.lower().startswith(_REPLY_PREFIXES):
        return subject
    return f"Re: {subject}" if subject else "Re: (no subject)"


def _reply(
    letter: LetterReceived,
    mailbox: Mailbox,
    config: MailroomConfig,
    rule: AutoResponseRule,
    parsed: ParsedLetter,
    thread_id: str,
    record: dict[str, str] | None,
    recipient: Address,
    key: str,
    languages: tuple[str, ...],
    now: datetime,
) -> ReplyRequested:
    head = letter.headers
    rid = reply_id(mailbox.id, key, rule.id)
    template = config.template_of(rule, languages)  # a named template's variant in the letter's language
    fields: dict[str, object] = {
        "subject": head.subject,
        "reply_subject": reply_subject(head.subject),
        "from_name": head.from_.name if head.from_ else "",
        "from_address": head.from_.address if head.from_ else "",
        "to": [a.address for a in head.to],
        "cc": [a.address for a in head.cc],
        "date": head.date.isoformat() if head.date else None,
        "message_id": head.message_id,
        # Not a letter field: template_variables lifts it out to the `record` variable.
        "record": record,
    }
    if names_text_body(template):
        fields["text_body"] = parsed.text_body
    return ReplyRequested(
        event_id=rid,
        occurred_at=letter.occurred_at,  # when the letter came: rate limits count in letter time
        produced_at=now,
        reply_id=rid,
        mailbox_id=mailbox.id,
        rule_id=rule.id,
        rule_name=rule.name,
        template=template,
        to=(recipient,),
        in_reply_to=head.message_id,
        references=(*head.references, head.message_id),
        thread_id=thread_id,
        letter=fields,
        mailbox_label=mailbox.label,
        mailbox_email=mailbox.email,
    )


def names_text_body(template: ReplyTemplate) -> bool:
    """Whether a template can read the letter's text body: only then does the body, the largest field,
    travel in the reply request (a template that reaches it another way fails on an unknown field)."""
    return "text_body" in template.subject or "text_body" in template.body
