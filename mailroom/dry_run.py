"""`mailroom rules test`: what mailroom would do with one letter in one mailbox; nothing is sent.

The letter goes through the real code paths as if it had just arrived (ingest's parser, the matcher's
decision with no earlier letters known, the responder's rendering and composing); this module only
formats what they say. No Kafka, no IMAP, no SMTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TextIO

from ingest.parse import letter_event
from matcher.decision import Outcome, created_record, decide
from matcher.errors import UnprocessableLetterError
from matcher.limits import ReplyHistory
from matcher.rules import compile_rules
from matcher.threads import ThreadIndex
from responder.compose import message_for
from responder.errors import TemplateError
from schemas.config import Condition, Mailbox, MailroomConfig, NoProcessing, ReplyPolicy
from schemas.events import LetterReceived, ReplyRequested, RuleOutcome

__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_UNREADABLE", "Trial", "report", "run", "try_letter"]

EXIT_OK = 0
EXIT_UNREADABLE = 1
"""The file cannot be read, or mailroom could not process it at all (no sender address)."""
EXIT_CONFIG = 2
"""The configuration is invalid, or names no such mailbox."""

# Headers of the reply that say how it is encoded, not what it says: the body is shown decoded instead.
_MIME_HEADERS = frozenset({"mime-version", "content-type", "content-transfer-encoding"})


@dataclass(frozen=True)
class Trial:
    """One letter tried in one mailbox: the matcher's outcome and each reply as the responder builds it
    (or why it cannot be built)."""

    letter: LetterReceived
    mailbox: Mailbox
    outcome: Outcome
    replies: tuple[tuple[ReplyRequested, EmailMessage | str], ...]


def try_letter(raw: bytes, mailbox: Mailbox, config: MailroomConfig, now: datetime) -> Trial:
    """Decides and composes as the workers would for a letter received `now` in the mailbox's first
    folder; UnprocessableLetterError when mailroom would dead-letter it."""
    letter = letter_event(mailbox.id, mailbox.organization, mailbox.folders[0], 0, 0, now, raw)
    outcome = decide(letter, mailbox, config, compile_rules(mailbox), ThreadIndex(), ReplyHistory(), now)
    replies: list[tuple[ReplyRequested, EmailMessage | str]] = []
    for request in outcome.replies:
        try:
            replies.append((request, message_for(request, mailbox, now)))
        except (TemplateError, ValueError) as exc:  # the responder's ReplyFailed, here a line of output
            replies.append((request, str(exc)))
    return Trial(letter, mailbox, outcome, tuple(replies))


def report(trial: Trial, source: str) -> str:
    """What a user reads: the letter, the loop guard, each rule's outcome, and every reply in full."""
    return (
        "\n".join([*_letter_lines(trial, source), "", *_rule_lines(trial), "", *_reply_lines(trial)]) + "\n"
    )


def run(config: MailroomConfig, mailbox_id: str, path: Path, now: datetime, out: TextIO, err: TextIO) -> int:
    """The command: reads the file, tries it, prints the report; returns the exit code."""
    mailbox = config.mailbox(mailbox_id)
    if mailbox is None:
        known = ", ".join(b.id for b in config.mailboxes) or "none"
        print(f"mailroom: no mailbox {mailbox_id!r} in the configuration (mailboxes: {known})", file=err)
        return EXIT_CONFIG
    try:
        raw = path.read_bytes()
    except OSError as exc:
        print(f"mailroom: cannot read {path}: {exc.strerror or exc}", file=err)
        return EXIT_UNREADABLE
    try:
        trial = try_letter(raw, mailbox, config, now)
    except UnprocessableLetterError as exc:
        print(f"mailroom: {path}: cannot be processed, it would go to the dead-letter topic: {exc}", file=err)
        return EXIT_UNREADABLE
    out.write(report(trial, str(path)))
    return EXIT_OK


def _letter_lines(trial: Trial, source: str) -> Iterator[str]:
    head, box, threaded = trial.letter.headers, trial.mailbox, trial.outcome.threaded
    sender = threaded.sender
    yield f"Letter {source}"
    yield f"  From: {f'{sender.name} <{sender.address}>' if sender.name else sender.address}"
    yield f"  Subject: {head.subject or '(none)'}"
    made = " (the letter has none; mailroom made this one)" if head.message_id_synthetic else ""
    yield f"  Message-ID: <{head.message_id}>{made}"
    yield f"Mailbox {box.id}: {box.label} <{box.email}>, reply policy {box.reply_policy.value}"
    yield f"Thread: {threaded.thread_id} (a new thread: this test knows no earlier letters)"
    record = created_record(threaded, box)
    if record is not None:
        yield f"Record: creates {record['type']} {record['id']} (templates see it as record)"
    elif isinstance(box.processing, NoProcessing):
        yield "Record: none, the mailbox makes no lead or case (templates see record as none)"
    else:
        yield f"Record: none, machine mail makes no {box.processing.type} here (templates see record as none)"
    blocked = trial.outcome.decided.skipped_because
    if blocked:
        yield f"Loop guard: mailroom never auto-replies to this letter: {blocked}"
    else:
        yield "Loop guard: passed, mailroom may auto-reply to this letter"


def _rule_lines(trial: Trial) -> Iterator[str]:
    box, decided = trial.mailbox, trial.outcome.decided
    active = box.active_rules()
    inactive = [r.id for r in box.rules if not r.active]
    if not active:
        yield "Rules: no active rule"
    elif decided.skipped_because:
        yield f"Rules: not evaluated ({len(active)} active): the loop guard stops the letter first"
    else:
        yield "Rules, active ones in order:"
        outcomes = {o.rule_id: o for o in decided.rules}
        for number, rule in enumerate(active, 1):
            outcome = outcomes.get(rule.id)
            head = f"  {number}. {rule.id} ({rule.name}): "
            if outcome is None:
                yield head + "not evaluated: first_match stops at the first matching rule"
            else:
                yield head + _outcome_text(outcome, rule.conditions)
    if inactive:
        yield f"Inactive, never evaluated: {', '.join(inactive)}"


def _outcome_text(outcome: RuleOutcome, conditions: tuple[Condition, ...]) -> str:
    if outcome.matched:
        return "matched" if conditions else "matched (no conditions: answers every letter)"
    if outcome.failed_condition is not None:
        index = outcome.failed_condition
        failed = _condition_text(conditions[index])
        return f"not matched: condition {index + 1} of {len(conditions)} failed: {failed}"
    return f"not matched: {outcome.reason}"


def _condition_text(condition: Condition) -> str:
    parts = [str(condition.field), condition.operator.value]
    if isinstance(condition.value, str) and condition.value:
        parts.append(json.dumps(condition.value, ensure_ascii=False))
    elif isinstance(condition.value, tuple):
        parts.append(json.dumps(list(condition.value), ensure_ascii=False))
    return " ".join(parts) + (" (case-sensitive)" if condition.case_sensitive else "")


def _reply_lines(trial: Trial) -> Iterator[str]:
    if not trial.replies:
        why = "the loop guard" if trial.outcome.decided.skipped_because else "no rule matched"
        yield f"Reply: none ({why})"
    else:
        ids = ", ".join(request.rule_id for request, _ in trial.replies)
        many = trial.mailbox.reply_policy is ReplyPolicy.ALL_MATCHING
        yield f"Replies: {len(trial.replies)} (rules {ids}; all_matching)" if many else f"Reply: rule {ids}"
    for request, message in trial.replies:
        yield ""
        if isinstance(message, str):
            yield f"--- reply of rule {request.rule_id} ({request.rule_name}): cannot be built ---"
            yield f"{message}"
            yield "(the responder would record the reply as failed and send nothing)"
            continue
        yield f"--- reply of rule {request.rule_id} ({request.rule_name}) ---"
        yield from _message_lines(message)
        yield "--- end of reply ---"
    yield ""
    yield "This is a test: nothing is sent, nothing is written to Kafka."


def _message_lines(message: EmailMessage) -> Iterator[str]:
    for name, value in message.items():
        if name.lower() not in _MIME_HEADERS:
            yield f"{name}: {value}"
    yield ""
    if message.is_multipart():
        for part in message.iter_parts():
            assert isinstance(part, EmailMessage)
            yield f"[{part.get_content_type()}]"
            yield from str(part.get_content()).rstrip("\n").split("\n")
    else:
        yield from str(message.get_content()).rstrip("\n").split("\n")
