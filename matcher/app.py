"""I/O edge: the matcher's stream handler. Reads received letters, remembers threads, publishes what comes
next.

The matcher's ledger holds each letter's place in its thread (mailbox, Message-ID, thread, whether it
started it, the ids it names) and each auto-reply it asked for (its thread, recipients and letter time,
for the limits). Employees' replies, which others publish on the requests topic, are read from it: they
join their thread too.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from matcher.decision import Outcome, decide
from matcher.limits import ReplyHistory
from matcher.rules import CompiledRules, compile_rules
from matcher.threads import ThreadIndex
from runtime import logs
from runtime.configfeed import LiveConfig
from runtime.ledger import Fact, Ledger
from runtime.policy import Source
from runtime.settings import WorkerSettings
from runtime.stream import Emitter, StreamWorker
from schemas import topics
from schemas.config import Mailbox, MailroomConfig
from schemas.errors import EventError, UnknownMailboxError
from schemas.events import LetterReceived, LetterThreaded, ReplyRequested, parse_event, utcnow
from schemas.ids import reply_message_id

__all__ = ["create_worker", "letter_fact", "reply_fact"]

logger = logging.getLogger(__name__)

STAGE = "matcher"


def letter_fact(letter: LetterThreaded) -> Fact:
    """What the ledger keeps of a placed letter."""
    return {
        "t": "letter",
        "m": letter.mailbox_id,
        "id": letter.letter_key or letter.message_id,
        "fp": letter.fingerprint,
        "thread": letter.thread_id,
        "starts": letter.starts_thread,
        "named": [*letter.in_reply_to, *letter.references],
    }


def reply_fact(reply: ReplyRequested) -> Fact:
    """What the ledger keeps of a requested reply."""
    return {
        "t": "reply",
        "m": reply.mailbox_id,
        "reply": reply.reply_id,
        "email": reply.mailbox_email,
        "thread": reply.thread_id,
        "kind": reply.kind,
        "letter": reply.in_reply_to,
        "to": [a.address for a in reply.to],
        "at": reply.occurred_at.isoformat(),
    }


def _kept(outcome: Outcome, replies: list[ReplyRequested], version: int) -> Outcome:
    """The outcome of a letter decided before: the replies asked for then, no record made anew."""
    return replace(
        outcome,
        threaded=outcome.threaded.model_copy(update={"kept_from": version}),
        decided=outcome.decided.model_copy(
            update={"kept_from": version, "reply_ids": tuple(r.reply_id for r in replies)}
        ),
        replies=tuple(replies),
    )


def create_worker(settings: WorkerSettings, config: MailroomConfig | LiveConfig) -> StreamWorker:
    live = config if isinstance(config, LiveConfig) else LiveConfig(config)
    threads = ThreadIndex()
    history = ReplyHistory()
    decided: dict[tuple[str, str], int] = {}
    """(mailbox, letter key) -> the configuration version its decision was made with (0: unknown)."""
    replied: dict[tuple[str, str], set[str]] = {}
    """(mailbox, Message-ID) -> the ids of the auto-replies asked for it."""

    def fold_fact(fact: Fact) -> None:
        if fact.get("t") == "letter":
            threads.remember(
                fact["m"], fact["id"], fact["thread"], bool(fact["starts"]), fact["named"], fact.get("fp", "")
            )
            decided[(fact["m"], fact["id"])] = int(fact.get("cfg") or 0)
        elif fact.get("t") == "reply":
            threads.remember(fact["m"], reply_message_id(fact["reply"], fact["email"]), fact["thread"], False)
            if fact["kind"] == "auto":
                replied.setdefault((fact["m"], fact["letter"]), set()).add(fact["reply"])
            if fact["kind"] == "auto":
                at = datetime.fromisoformat(fact["at"])
                history.note(fact["m"], fact["thread"], fact["letter"], fact["to"], at)

    def fold_output(spec: topics.TopicSpec, data: bytes) -> Fact | None:
        try:
            if spec is topics.LETTERS_THREADED:
                fact = letter_fact(parse_event(LetterThreaded, data))
            else:
                fact = reply_fact(parse_event(ReplyRequested, data))
        except EventError as exc:
            # Others publish employee replies on the requests topic; one we cannot read is theirs to fix.
            logger.warning("ledger: %s skipped: %s", spec.name, exc)
            return None
        fold_fact(fact)
        return fact

    def forget() -> None:
        threads.clear()
        history.clear()
        decided.clear()
        replied.clear()

    ledger = Ledger(
        settings.kafka,
        STAGE,
        [topics.LETTERS_THREADED, topics.REPLIES_REQUESTED],
        fold_fact,
        fold_output,
        forget,
        foreign=[topics.REPLIES_REQUESTED],
    )
    compiled: dict[str, tuple[Mailbox, CompiledRules]] = {}

    def rules_of(box: Mailbox) -> CompiledRules:
        """The mailbox's rules, compiled once per version of the mailbox."""
        hit = compiled.get(box.id)
        if hit is not None and (hit[0] is box or hit[0] == box):
            compiled[box.id] = (box, hit[1])
            return hit[1]
        rules = compile_rules(box)
        compiled[box.id] = (box, rules)
        return rules

    letters: dict[tuple[int, int], LetterReceived] = {}
    """The letter of the message under way, by (partition, offset), for its dead letter should it fail."""

    async def handle(source: Source, out: Emitter) -> None:
        letter = parse_event(LetterReceived, source.value)
        logs.note(message_id=letter.headers.message_id)
        letters[(source.partition, source.offset)] = letter
        current = live.config
        mailbox = current.mailbox(letter.mailbox_id)
        if mailbox is None:
            raise UnknownMailboxError(f"mailbox {letter.mailbox_id!r} is not in the configuration")
        version = live.version_of(mailbox.id)
        outcome = decide(letter, mailbox, current, rules_of(mailbox), threads, history, utcnow())
        place = (mailbox.id, outcome.threaded.letter_key)
        known = threads.knows(*place)
        cfg = version or 0
        if known:
            # Decided before (a replay, or the letter read again): its decision stands, whatever the
            # configuration says now. Only the replies asked for then; no record is made anew.
            kept = cfg = decided.get(place, 0)
            before = replied.get((mailbox.id, outcome.threaded.message_id), set())
            replies = [r for r in outcome.replies if r.reply_id in before]
            outcome = _kept(outcome, replies, kept)
        else:
            outcome = replace(outcome, decided=outcome.decided.model_copy(update={"config_version": version}))
        out.emit(topics.LETTERS_THREADED, mailbox.id, outcome.threaded)
        out.emit(topics.LETTERS_SHARED, mailbox.id, outcome.shared)
        for reply in outcome.replies:
            out.emit(topics.REPLIES_REQUESTED, mailbox.id, reply)
        out.emit(topics.LETTERS_DECIDED, mailbox.id, outcome.decided)
        facts = [
            (outcome.threaded.message_id, {**letter_fact(outcome.threaded), "cfg": cfg}),
            *((reply.reply_id, reply_fact(reply)) for reply in outcome.replies),
        ]
        for key, fact in facts:
            if not known:  # a letter read again (a replay, a second copy) is in the ledger already
                out.remember(key, fact)
            # Folded now, as a rebuild folds it, not when the broker acknowledges: the next letter of
            # the batch may answer this one. Should the broker not take it, the stream loop rewinds.
            fold_fact(fact)
        logger.info(
            "%s: %s letter %s thread %s%s, replies %d%s",
            source.where(),
            letter.mailbox_id,
            letter.headers.message_id,
            outcome.threaded.thread_id,
            " (new)" if outcome.threaded.starts_thread else "",
            len(outcome.replies),
            f", no auto-reply: {outcome.decided.skipped_because}" if outcome.decided.skipped_because else "",
        )
        letters.pop((source.partition, source.offset), None)

    return StreamWorker(
        STAGE,
        settings.kafka,
        topics.LETTERS_RECEIVED,
        handle,
        ledger,
        letter_of=lambda source: letters.pop((source.partition, source.offset), None),
    )
