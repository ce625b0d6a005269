"""Events on the topics: past-tense facts, each with `schema_version`, a deterministic `event_id` and times.

Values travel as UTF-8 JSON (`Event.to_bytes`); `parse_event` validates bytes into the expected model and
raises EventError (never a pydantic trace) when they do not fit.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.config import Mailbox, NamedTemplate, ReplyTemplate
from schemas.errors import EventError
from schemas.ids import deterministic_id

__all__ = [
    "DEAD_LETTER_MAX_BYTES",
    "REPLY_ID_PATTERN",
    "Address",
    "CaseCreated",
    "ConfigRemoved",
    "DeadLetter",
    "Event",
    "FolderHealth",
    "IngestCheckpoint",
    "LeadCreated",
    "LetterDecided",
    "LetterHeaders",
    "LetterLinked",
    "LetterReceived",
    "LetterShared",
    "LetterThreaded",
    "MailboxHealth",
    "MailboxVersion",
    "ReplyContent",
    "ReplyDeferred",
    "ReplyFailed",
    "ReplyFiled",
    "ReplyFilingFailed",
    "ReplyRequested",
    "ReplySent",
    "RuleOutcome",
    "TemplateVersion",
    "event_type_of",
    "parse_event",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    # bytes travel as base64 in JSON and are plain bytes in Python.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        ser_json_bytes="base64",
        val_json_bytes="base64",
        use_attribute_docstrings=True,  # field docstrings become descriptions in the JSON Schema files
    )


class Event(_Model):
    """Common fields. `event_type` names the model (topics such as the reply outcomes carry several);
    `occurred_at`: when the fact happened; `produced_at`: when this event was written."""

    schema_version: Literal[1] = 1
    event_id: str
    occurred_at: datetime
    produced_at: datetime = Field(default_factory=utcnow)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


E = TypeVar("E", bound=Event)


def event_type_of(data: bytes) -> str | None:
    """The `event_type` of an event's JSON without validating the rest; None when it has none."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    kind = value.get("event_type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


def parse_event(model: type[E], data: bytes | None) -> E:
    """Validates a message value as `model`; EventError names what is wrong."""
    if data is None:
        raise EventError(f"expected a {model.__name__}, got an empty message")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(event)'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise EventError(f"not a valid {model.__name__}: {problems}") from None


class Address(_Model):
    """A mailbox address with its display name (decoded from RFC 2047)."""

    name: str = ""
    address: str


class LetterHeaders(_Model):
    """The header fields later stages need, parsed once by ingest."""

    message_id: str
    """Without angle brackets; a synthetic `<hash>@mailroom.invalid` when the letter has none."""
    message_id_synthetic: bool = False
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    subject: str = ""
    from_: Address | None = Field(None, alias="from")
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    date: datetime | None = None


class LetterReceived(Event):
    """A letter read from a mailbox folder. `event_id` comes from (mailbox, folder, UIDVALIDITY, UID)."""

    event_type: Literal["LetterReceived"] = "LetterReceived"
    mailbox_id: str
    organization: str
    folder: str
    uidvalidity: int
    uid: int
    size: int
    headers: LetterHeaders
    defects: tuple[str, ...] = ()
    raw: bytes
    """The letter's bytes exactly as the IMAP server gave them."""


class LetterThreaded(Event):
    """A parsed letter and its thread. `thread_id` is the Message-ID of the thread's first letter."""

    event_type: Literal["LetterThreaded"] = "LetterThreaded"
    mailbox_id: str
    organization: str
    letter_id: str
    """The event id of the LetterReceived this comes from."""
    message_id: str
    letter_key: str = ""
    """How mailroom tells this letter apart: its Message-ID; or, when another letter (another sender, date
    or text) came before with the same Message-ID, that id + `#` + a fingerprint of this letter."""
    fingerprint: str = ""
    """A hash of the letter's sender, date, subject and text: copies of one letter share it."""
    thread_id: str
    starts_thread: bool
    """True for the first letter of its thread that mailroom saw: the one a lead or case is made from."""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    direction: Literal["incoming", "outgoing"] = "incoming"
    """Outgoing: sent by a mailroom mailbox (its replies, or employees' replies through it)."""
    automated_because: str | None = None
    """Set when a machine, a mailing list or mailroom itself sent the letter (why it gets no auto-reply)."""
    sender: Address
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    subject: str = ""
    text_body: str = ""
    date: datetime | None = None
    kept_from: int | None = None
    """Set when the letter was decided before (a replay): no record is made from it anew, whatever the
    configuration says now (the configuration version of the first decision; 0: unknown)."""


class LetterShared(Event):
    """Who may see a letter: the mailbox's authorized users and roles when the letter was processed
    (public contract: a notifier tells them). One per letter; `event_id` comes from the letter's."""

    event_type: Literal["LetterShared"] = "LetterShared"
    mailbox_id: str
    organization: str
    mailbox_email: str
    letter_id: str
    message_id: str
    thread_id: str
    subject: str = ""
    sender: Address
    date: datetime | None = None
    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


class LetterLinked(Event):
    """A later letter of a thread that has a lead or case, linked to it (public contract), so downstream
    attaches the correspondence. `event_id` comes from the record id and the letter's Message-ID."""

    event_type: Literal["LetterLinked"] = "LetterLinked"
    record_type: Literal["lead", "case"]
    record_id: str
    organization: str
    mailbox_id: str
    letter_id: str
    message_id: str
    thread_id: str
    direction: Literal["incoming", "outgoing"]
    sender: Address
    subject: str = ""
    date: datetime | None = None


class RuleOutcome(_Model):
    """How one rule fared on a letter; `failed_condition` is the index of the first condition that failed."""

    rule_id: str
    rule_name: str
    matched: bool
    failed_condition: int | None = None
    reason: str | None = None
    """Why a rule did not match when no condition failed, e.g. the letter is older than the rule."""


class LetterDecided(Event):
    """What the matcher decided about replying to a letter, and why: this is what an auditor reads."""

    event_type: Literal["LetterDecided"] = "LetterDecided"
    mailbox_id: str
    letter_id: str
    message_id: str
    subject: str = ""
    sender: str = ""
    rules: tuple[RuleOutcome, ...] = ()
    reply_ids: tuple[str, ...] = ()
    limited: tuple[str, ...] = ()
    """Replies a rule chose but a rate limit held back, as `rule id: reason`."""
    skipped_because: str | None = None
    """Set when the letter may not be auto-answered at all (a loop guard), e.g. 'auto-submitted'."""
    handled_as: str | None = None
    """Set when another letter came before with this letter's Message-ID: the key this one is told apart
    by (its own thread, record and replies)."""
    config_version: int | None = None
    """The version of the mailbox's configuration the decision was made with (None: from a file)."""
    kept_from: int | None = None
    """Set when the letter was decided before (a replay, or the same letter read again): the decision and
    its replies are the ones made then, with configuration version `kept_from` (0: unknown), whatever the
    configuration says now."""


DEAD_LETTER_MAX_BYTES = 16 * 1024 * 1024
"""The largest dead letter (as JSON) by default: the pipeline's message size limit."""
_DEAD_LETTER_OVERHEAD = 64 * 1024
"""Room for a dead letter's fields other than its original (the reason is cut to _REASON_CHARS)."""
_REASON_CHARS = 10_000

REPLY_ID_PATTERN = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
"""What a reply id may be (an RFC 5322 dot-atom): the reply's Message-ID is `reply-<id>@<mailbox domain>`."""


class ReplyContent(_Model):
    """The literal text of an employee's reply: sent exactly as written, never rendered as a template."""

    subject: str
    """One line; line breaks and other control characters are folded to spaces when the reply is built."""
    body: str = Field(max_length=200_000)
    type: Literal["plain", "html"] = "plain"
    """html bodies are sent as written, with a text alternative made from them."""


class ReplyRequested(Event):
    """A reply to send as a mailbox. `event_id` equals `reply_id`: one request per reply.

    `kind` auto: the matcher asks for a rule's templated auto-reply (`rule_id`, `rule_name`, `template`,
    `letter`). `kind` employee: a downstream system asks mailroom to send what an employee wrote
    (`content`, `author`) through the mailbox, as the mailbox."""

    # What the validator below checks, in the JSON Schema too, for downstream publishers.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"kind": {"const": "employee"}}, "required": ["kind"]},
            "then": {
                "required": ["content", "author"],
                "properties": {
                    "content": {"type": "object"},
                    "author": {"type": "string", "minLength": 1},
                    "template": {"type": "null"},
                    "to": {"minItems": 1},
                },
            },
            "else": {
                "required": ["rule_id", "template"],
                "properties": {
                    "rule_id": {"minLength": 1},
                    "template": {"type": "object"},
                    "content": {"type": "null"},
                },
            },
        }
    )

    event_type: Literal["ReplyRequested"] = "ReplyRequested"
    reply_id: str = Field(min_length=1, max_length=200, pattern=REPLY_ID_PATTERN)
    """Unique per reply; the reply's Message-ID is made from it, and a reply id is sent at most once."""
    mailbox_id: str
    kind: Literal["auto", "employee"] = "auto"
    rule_id: str = ""
    """auto: the rule that chose the reply."""
    rule_name: str = ""
    template: ReplyTemplate | None = None
    """auto: the rule's jinja2 template."""
    content: ReplyContent | None = None
    """employee: the reply's subject and body as the employee wrote them."""
    author: str | None = None
    """employee: who wrote the reply (a user id or address of the downstream system); never sent."""
    to: tuple[Address, ...]
    in_reply_to: str
    """The Message-ID (without brackets) of the letter answered."""
    references: tuple[str, ...] = ()
    """The reply's References header, oldest first, without brackets (usually the letter's References
    and its Message-ID)."""
    thread_id: str
    """The thread of the letter answered; the reply joins it."""
    letter: dict[str, object] = {}
    """auto: template variables taken from the incoming letter (subject, sender, date, text body, ...)."""
    mailbox_label: str = ""
    mailbox_email: str
    """The mailbox's address (the reply's Message-ID domain comes from it)."""
    resend: bool = False
    """An operator asks to send again a reply whose sending failed for good (`mailroom replies resend`);
    a reply sent, or still being tried, is not sent again."""

    @model_validator(mode="after")
    def _kind_has_its_fields(self) -> ReplyRequested:
        if self.kind == "auto":
            if self.template is None or not self.rule_id:
                raise ValueError("an auto reply needs a rule_id and a template")
            if self.content is not None:
                raise ValueError("an auto reply is rendered from its template: it takes no content")
        else:
            if self.content is None or not self.author:
                raise ValueError("an employee reply needs its content and its author")
            if self.template is not None:
                raise ValueError("an employee reply is sent as written: it takes no template")
            if not self.to:
                raise ValueError("an employee reply needs at least one recipient in to")
        return self


class ReplySent(Event):
    """The SMTP server accepted a reply. `event_id` comes from the reply id (one outcome per reply)."""

    event_type: Literal["ReplySent"] = "ReplySent"
    reply_id: str
    mailbox_id: str
    message_id: str
    """The reply's Message-ID, without brackets."""
    to: tuple[str, ...]
    smtp_code: int | None = None
    """The SMTP server's final reply to the message (250), with `smtp_text`."""
    smtp_text: str | None = None
    attempts: int = 1
    """How many tries it took (retriable failures, SMTP 4xx or a dropped connection, are tried again)."""
    message: bytes = b""
    """The exact bytes sent (CRLF line ends), the copy filed in the Sent folder is made from them; empty in
    events written before mailroom filed copies."""


class ReplyDeferred(Event):
    """A reply failed for a moment (SMTP 4xx, no connection) on every quick try: it is kept and tried again
    at `retry_at`, also after a restart, until `smtp.retry_hours` after its first failure. `event_id` comes
    from the reply id and the tries so far (one per deferral)."""

    event_type: Literal["ReplyDeferred"] = "ReplyDeferred"
    reply_id: str
    mailbox_id: str
    reason: str
    smtp_code: int | None = None
    smtp_text: str | None = None
    attempts: int
    """Tries so far, over every deferral."""
    first_failed_at: datetime
    retry_at: datetime


class ReplyFailed(Event):
    """A reply could not be sent; `smtp_code` and `smtp_text` are set when the server refused it."""

    event_type: Literal["ReplyFailed"] = "ReplyFailed"
    reply_id: str
    mailbox_id: str
    reason: str
    smtp_code: int | None = None
    smtp_text: str | None = None
    retriable: bool = False
    """Whether the last failure was a temporary one (all tries used up), not a refusal."""
    attempts: int = 1
    """How many tries were made; 0 when the reply could not be built (a template failed on the letter)."""


class ReplyFiled(Event):
    """A copy of a sent reply is in the mailbox's Sent folder, flagged \\Seen. `event_id` comes from the
    reply id (one filing outcome per reply)."""

    event_type: Literal["ReplyFiled"] = "ReplyFiled"
    reply_id: str
    mailbox_id: str
    message_id: str
    folder: str
    uidvalidity: int | None = None
    uid: int | None = None
    """The copy's UID in `folder` when the server tells it (UIDPLUS)."""
    already_there: bool = False
    """The copy was found in the folder (filed before a crash), so nothing was appended."""
    attempts: int = 1


class ReplyFilingFailed(Event):
    """A sent reply could not be copied to the mailbox's Sent folder; it is not sent again. `event_id` comes
    from the reply id (one filing outcome per reply)."""

    event_type: Literal["ReplyFilingFailed"] = "ReplyFilingFailed"
    reply_id: str
    mailbox_id: str
    message_id: str
    reason: str
    retriable: bool = False
    """Whether the last failure was a temporary one (all tries used up)."""
    attempts: int = 1


class LeadCreated(Event):
    """A lead made from the first letter of a thread (public contract). `event_id` equals `lead_id`."""

    event_type: Literal["LeadCreated"] = "LeadCreated"
    lead_id: str
    """Deterministic from the mailbox and the thread: `schemas.ids.lead_id(mailbox_id, thread_id)`."""
    organization: str
    """The mailbox's organization."""
    mailbox_id: str
    mailbox_email: str
    """The system mailbox the letter came to (the lead's source address)."""
    name: str
    """The letter's subject, or "(no subject)"."""
    first_name: str
    """From the sender's display name ("Ann Lee", "Lee, Ann"); else from the address's local part."""
    last_name: str
    email: str
    """The sender's address."""
    notes: str
    """The letter's text body (html-only letters converted to text)."""
    status: str = "new"
    owner: str | None = None
    """From the mailbox's lead settings."""
    source: str = "email"
    """From the mailbox's lead settings."""
    channel: str | None = None
    """From the mailbox's lead settings."""
    letter_id: str
    """The event id of the LetterReceived the lead was made from."""
    message_id: str
    """The Message-ID (without brackets) of the letter the lead was made from."""
    thread_id: str
    """The thread's id (the oldest Message-ID its conversation names); later letters link to the lead."""


class CaseCreated(Event):
    """A case made from the first letter of a thread (public contract). `event_id` equals `case_id`."""

    event_type: Literal["CaseCreated"] = "CaseCreated"
    case_id: str
    """Deterministic from the mailbox and the thread: `schemas.ids.case_id(mailbox_id, thread_id)`."""
    organization: str
    """The mailbox's organization."""
    mailbox_id: str
    mailbox_email: str
    """The system mailbox the letter came to (the case's source address)."""
    subject: str
    """The letter's subject, or "(no subject)"."""
    description: str
    """The letter's text body (html-only letters converted to text)."""
    reporter_email: str
    """The sender's address."""
    owner: str | None = None
    """From the mailbox's case settings, like assignee, status, priority and tags."""
    assignee: str | None = None
    status: str = "open"
    priority: str = "normal"
    tags: tuple[str, ...] = ()
    letter_id: str
    """The event id of the LetterReceived the case was made from."""
    message_id: str
    """The Message-ID (without brackets) of the letter the case was made from."""
    thread_id: str
    """The thread's id (the oldest Message-ID its conversation names); later letters link to the case."""


class DeadLetter(Event):
    """Something a worker could not process, with the reason and the original bytes."""

    event_type: Literal["DeadLetter"] = "DeadLetter"
    stage: str
    reason: str
    error_type: str
    source_topic: str
    source_partition: int | None = None
    source_offset: int | None = None
    source_key: str | None = None
    mailbox_id: str | None = None
    original: bytes
    """The raw letter when there is one, otherwise the message value as it was read; only its first
    bytes when it would not fit in one message (`original_truncated`)."""
    original_kind: Literal["letter", "event"]
    original_size: int | None = None
    """The size of the whole original."""
    original_sha256: str | None = None
    """The SHA-256 (hex) of the whole original, to find it where it is kept whole (the mailbox)."""
    original_truncated: bool = False

    @classmethod
    def of(
        cls,
        stage: str,
        error: BaseException,
        source_topic: str,
        original: bytes,
        original_kind: Literal["letter", "event"],
        *,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
        mailbox_id: str | None = None,
        max_bytes: int = DEAD_LETTER_MAX_BYTES,
    ) -> DeadLetter:
        """The dead letter for `error`; its id comes from where the original was read (a retry repeats it).
        It always fits in `max_bytes` as JSON: a longer original keeps its first bytes, its size and hash."""
        room = max(0, (max_bytes - _DEAD_LETTER_OVERHEAD) * 3 // 4)  # bytes travel as base64
        reason = str(error) or type(error).__name__
        return cls(
            event_id=deterministic_id("dead-letter", stage, source_topic, partition, offset, original_kind),
            occurred_at=utcnow(),
            stage=stage,
            reason=reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 6] + " [...]",
            error_type=type(error).__name__,
            source_topic=source_topic,
            source_partition=partition,
            source_offset=offset,
            source_key=key.decode("utf-8", "replace")[:1000] if key is not None else None,
            mailbox_id=mailbox_id,
            original=original[:room],
            original_kind=original_kind,
            original_size=len(original),
            original_sha256=hashlib.sha256(original).hexdigest(),
            original_truncated=len(original) > room,
        )


class IngestCheckpoint(Event):
    """How far ingest has read one mailbox folder."""

    event_type: Literal["IngestCheckpoint"] = "IngestCheckpoint"
    mailbox_id: str
    folder: str
    uidvalidity: int
    last_uid: int
    recent: tuple[str, ...] = ()
    """Fingerprints (Message-ID and size) of the folder's latest letters, newest last: a folder recreated
    with a new UIDVALIDITY is read again from its start, and a letter whose fingerprint is here (or that
    arrived before `recent_since`) is not published twice."""
    recent_since: datetime | None = None
    """Every letter that arrived (INTERNALDATE) before this moment was read, or lay before where reading
    the folder started."""
    recheck: bool = False
    """Letters after `last_uid` are checked against `recent` and `recent_since` before they are published:
    the folder is being read again after a UIDVALIDITY change, or from a configured date."""


HealthState = Literal["ok", "connecting", "retrying", "failing", "stopped"]


class MailboxVersion(Event):
    """One version of a mailbox's configuration, on the configuration topic (key: the mailbox id; a
    tombstone deletes the mailbox). Every rule has its `created_at`: a rule answers only letters received
    after it first existed."""

    event_type: Literal["MailboxVersion"] = "MailboxVersion"
    mailbox: Mailbox
    version: int = Field(ge=1)
    changed_by: str
    """Who published it (the operator's user name, or the admin's user)."""
    created_at: datetime
    """When the mailbox's first version was published."""


class TemplateVersion(Event):
    """One version of a named template, on the configuration topic (key: `template:<name>`)."""

    event_type: Literal["TemplateVersion"] = "TemplateVersion"
    name: str
    template: NamedTemplate
    version: int = Field(ge=1)
    changed_by: str
    created_at: datetime


class ConfigRemoved(Event):
    """A mailbox or named template deleted (on the history topic; the configuration topic gets a
    tombstone)."""

    event_type: Literal["ConfigRemoved"] = "ConfigRemoved"
    key: str
    version: int = Field(ge=1)
    changed_by: str


class FolderHealth(_Model):
    """How reading one folder of a mailbox goes."""

    folder: str
    state: HealthState
    waiting: Literal["idle", "poll", "none"] = "none"
    """How new letters are noticed: IMAP IDLE, polling, or not at all (not connected)."""
    last_uid: int = 0
    error: str | None = None


class MailboxHealth(Event):
    """How reading a mailbox goes, as the ingest process that owns it sees it: `ok` (connected,
    reading), `connecting` (its first connection is being made), `retrying` (a fault that should pass:
    reconnecting with backoff), `failing` (the server refused the login, or it has not worked for
    minutes: retried slowly, or at once when its settings change), `stopped` (its ingest process stopped
    or handed it on; the next owner reports soon). Published on every change; the topic is compacted by
    mailbox id, so its latest record is the mailbox's state, and a mailbox removed from the configuration
    has its record deleted (a tombstone)."""

    event_type: Literal["MailboxHealth"] = "MailboxHealth"
    mailbox_id: str
    organization: str
    state: HealthState
    since: datetime
    """When the mailbox entered this state."""
    error: str | None = None
    """The last error, as the server or the network said it."""
    advice: str | None = None
    """What an administrator should do about it."""
    last_letter_at: datetime | None = None
    """When ingest last published a letter of this mailbox."""
    folders: tuple[FolderHealth, ...] = ()
    owner: str = ""
    """The ingest process (host:pid) reading the mailbox."""
