"""Configuration models: mailboxes, their servers, processing and auto-response rules.

Pure data validated by pydantic; `runtime.loading` turns a YAML file into a `MailroomConfig`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from schemas.conditions import Condition, ConditionField, ConditionOperator, HeaderField, compile_regex
from schemas.errors import ConfigError

__all__ = [
    "AuthorizedUsers",
    "AutoReplyLimits",
    "AutoResponseRule",
    "CaseProcessing",
    "Condition",
    "ConditionField",
    "ConditionOperator",
    "EnvSecret",
    "FileSecret",
    "HeaderField",
    "ImapSettings",
    "LeadProcessing",
    "Mailbox",
    "MailroomConfig",
    "NamedTemplate",
    "NoProcessing",
    "OAuth2Settings",
    "Processing",
    "ReplyPolicy",
    "ReplyTemplate",
    "Secret",
    "Security",
    "SmtpSecurity",
    "SmtpSettings",
    "TemplateVariant",
    "reveal",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EnvSecret(_Model):
    """A password given as the name of an environment variable: `password: {env: SUPPORT_IMAP_PASSWORD}`."""

    env: str

    def __repr__(self) -> str:
        return f"EnvSecret(env={self.env!r})"


class FileSecret(_Model):
    """A secret kept in a file (a mounted Kubernetes secret, say): `password: {file: /run/secrets/imap}`.
    Its content, without a trailing newline, is the value."""

    file: str = Field(min_length=1)

    def __repr__(self) -> str:
        return f"FileSecret(file={self.file!r})"


Secret = SecretStr | EnvSecret | FileSecret


def reveal(secret: Secret) -> str:
    """The secret's value, read at the I/O edge only; a missing variable or unreadable file is a
    ConfigError."""
    if isinstance(secret, SecretStr):
        return secret.get_secret_value()
    if isinstance(secret, FileSecret):
        try:
            with open(secret.file, encoding="utf-8") as handle:
                return handle.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"secret file {secret.file} cannot be read: {exc.strerror}") from None
    try:
        return os.environ[secret.env]
    except KeyError:
        raise ConfigError(f"environment variable {secret.env} (a secret reference) is not set") from None


class Security(StrEnum):
    """How a connection is protected: none (test servers), STARTTLS on the plain port, or TLS from the
    first byte (IMAPS on 993, SMTPS on 465)."""

    NONE = "none"
    STARTTLS = "starttls"
    TLS = "tls"


SmtpSecurity = Security
"""The name SMTP settings have used; the same three choices."""


class OAuth2Settings(_Model):
    """Where a mailbox's XOAUTH2 access token comes from (Gmail, Microsoft 365). Exactly one source:

    - `token`: an access token kept fresh by someone else (a secret reference);
    - `refresh_command`: a command that prints a fresh access token (or a JSON object with
      `access_token` and `expires_in`), run again before the token expires;
    - `token_endpoint` with `client_id`, `client_secret` and `refresh_token`: the provider's OAuth2 token
      endpoint, asked with the refresh-token grant. A provider that hands out a new refresh token with
      the access token gets its newest one back next time (it is kept in the data folder).
    """

    token: Secret | None = None
    refresh_command: str | None = None
    token_endpoint: str | None = Field(None, pattern=r"^https?://")
    client_id: str | None = None
    client_secret: Secret | None = None
    refresh_token: Secret | None = None
    scope: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> OAuth2Settings:
        sources = [
            name for name in ("token", "refresh_command", "token_endpoint") if getattr(self, name) is not None
        ]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one of token, refresh_command or token_endpoint"
                + (f" (got {', '.join(sources)})" if sources else "")
            )
        if self.token_endpoint is not None and (self.client_id is None or self.refresh_token is None):
            raise ValueError("token_endpoint needs client_id and refresh_token (and usually client_secret)")
        return self


def _legacy_ssl(data: object) -> object:
    """`ssl: true|false`, as written before `security` existed, means `security: tls|none`."""
    if isinstance(data, dict) and "ssl" in data:
        data = dict(data)
        ssl = data.pop("ssl")
        if "security" not in data:
            data["security"] = Security.TLS if ssl else Security.NONE
    return data


class ImapSettings(_Model):
    """How ingest reads a mailbox (and the responder files copies of replies)."""

    host: str
    port: int = Field(993, ge=1, le=65535)
    security: Security = Security.TLS
    """`tls` (IMAPS, port 993), `starttls` (port 143, upgraded before login) or `none` (test servers)."""
    username: str
    auth: Literal["password", "xoauth2"] = "password"
    """`password`: LOGIN with `password`; `xoauth2`: a token from `oauth2` (Gmail, Microsoft 365)."""
    password: Secret | None = None
    oauth2: OAuth2Settings | None = None
    # Certificate checks may be turned off for test servers only.
    verify_certificates: bool = True
    sent_folder: str = "Sent"
    """Where copies of sent replies go when the server marks no folder as \\Sent (created if missing)."""
    idle: bool = True
    """Wait for new letters with IMAP IDLE where the server offers it; polling otherwise."""
    poll_seconds: float | None = Field(None, gt=0, le=3600)
    """How often a folder is looked at when IDLE is not used; None: the process's MAILROOM_POLL_SECONDS."""

    @model_validator(mode="before")
    @classmethod
    def _ssl(cls, data: object) -> object:
        return _legacy_ssl(data)

    @model_validator(mode="after")
    def _credentials(self) -> ImapSettings:
        if self.auth == "password" and self.password is None:
            raise ValueError("auth 'password' needs a password (or set auth: xoauth2 with oauth2)")
        if self.auth == "xoauth2" and self.oauth2 is None:
            raise ValueError(
                "auth 'xoauth2' needs oauth2 settings (token, refresh_command or token_endpoint)"
            )
        return self


class SmtpSettings(_Model):
    """How the responder sends as a mailbox."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: Secret | None = None
    oauth2: OAuth2Settings | None = None
    """Log in with XOAUTH2 (a token from here) instead of the password."""
    verify_certificates: bool = True
    timeout_seconds: float = Field(30.0, gt=0)
    envelope_from: Literal["mailbox", "null"] = "mailbox"
    """The envelope sender of auto-replies: the mailbox address, or the null sender `<>` (RFC 3834)."""
    attempts: int = Field(4, ge=1, le=20)
    """Tries per reply for retriable failures (SMTP 4xx, dropped connections); 5xx fails at once."""
    first_retry_seconds: float = Field(1.0, gt=0)
    """The wait before the second try; it doubles with each further try."""
    retry_hours: float = Field(8.0, gt=0, le=168)
    """How long a reply that fails for a moment (4xx, no connection) on every quick try is kept and tried
    again, also across restarts, before it fails for good."""
    connections: int = Field(1, ge=1, le=32)
    """How many of the mailbox's replies go out at once, each over its own reused connection, and are
    accepted by the server but not yet recorded as sent: a crash of the responder may send those twice
    (one at most with 1). More send faster."""


class AutoReplyLimits(_Model):
    """How often a mailbox may auto-reply. A limited reply is recorded in the decision, not sent."""

    per_thread: int = Field(1, ge=1)
    """Auto-replies in one thread."""
    per_sender_per_hour: int = Field(3, ge=1)
    per_sender_per_day: int = Field(10, ge=1)
    reply_to_spam: bool = False
    """Whether letters an upstream filter flagged (`X-Spam-Flag: YES`) may be auto-answered."""
    robot_senders: str | None = None
    """A regular expression (RE2, case-insensitive, searched in the address) for more senders never
    auto-answered, next to the built-in ones (mailer-daemon, postmaster, noreply, *-request, owner-*)."""

    @field_validator("robot_senders")
    @classmethod
    def _robot_senders_compile(cls, value: str | None) -> str | None:
        if value:
            compile_regex(value, case_sensitive=False)  # ValueError names the pattern and the problem
        return value


class NoProcessing(_Model):
    """ "Do nothing": letters are received and answered, but make no record."""

    type: Literal["none"] = "none"


class LeadProcessing(_Model):
    """ "Convert to Lead": the first letter of each thread becomes a lead."""

    type: Literal["lead"]
    ignore_automated: bool = True
    """No lead from machine mail: auto-replies, bounces, mailing lists, mail from mailroom itself."""
    owner: str | None = None
    source: str = "email"
    channel: str | None = None


class CaseProcessing(_Model):
    """ "Convert to Case": the first letter of each thread becomes a case."""

    type: Literal["case"]
    ignore_automated: bool = True
    """No case from machine mail: auto-replies, bounces, mailing lists, mail from mailroom itself."""
    owner: str | None = None
    assignee: str | None = None
    status: str = "open"
    priority: str = "normal"
    tags: tuple[str, ...] = ()


Processing = Annotated[NoProcessing | LeadProcessing | CaseProcessing, Field(discriminator="type")]


class ReplyTemplate(_Model):
    """A jinja2 template for a reply: subject and body, html or plain."""

    subject: str
    body: str
    type: Literal["plain", "html"] = "plain"


_LANGUAGE_TAG = r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"
"""What a language tag looks like (BCP 47, as in `Content-Language`): `de`, `de-CH`, `pt-BR`, `zh-Hant`."""


def _language_tag(tag: str) -> str:
    if not re.fullmatch(_LANGUAGE_TAG, tag):
        raise ValueError(f"not a language tag like en, de or de-CH (got {tag!r})")
    return tag


class TemplateVariant(_Model):
    """A named template's subject and body in one more language."""

    subject: str
    body: str
    type: Literal["plain", "html"] | None = None
    """None: the type of the template it belongs to."""


class NamedTemplate(ReplyTemplate):
    """A template kept under a name, for the rules of one organization's mailboxes (or of all); its
    subject and body are in `language`, and `variants` may say the same in other languages."""

    organization: str | None = None
    """The organization whose mailboxes may use it; None: every organization."""
    language: str = "en"
    """The language of `subject` and `body`: the variant a letter gets when none of its languages has one."""
    variants: dict[str, TemplateVariant] = {}
    """More languages by tag (`de`, `de-CH`): a letter in one of them gets that variant."""
    _by_language: dict[str, ReplyTemplate] = PrivateAttr(default_factory=dict)

    @field_validator("language")
    @classmethod
    def _language_is_a_tag(cls, value: str) -> str:
        return _language_tag(value)

    @field_validator("variants")
    @classmethod
    def _variants_are_languages(cls, value: dict[str, TemplateVariant]) -> dict[str, TemplateVariant]:
        seen: dict[str, str] = {}
        for tag in value:
            _language_tag(tag)
            if tag.lower() in seen:
                raise ValueError(f"{seen[tag.lower()]!r} and {tag!r} are one language (tags ignore case)")
            seen[tag.lower()] = tag
        return value

    @model_validator(mode="after")
    def _variants_resolve(self) -> NamedTemplate:
        if any(tag.lower() == self.language.lower() for tag in self.variants):
            raise ValueError(
                f"variants: {self.language!r} is the language of the template's own subject and body "
                "(`language`); give it once"
            )
        self._by_language = {
            self.language.lower(): ReplyTemplate(subject=self.subject, body=self.body, type=self.type),
            **{
                tag.lower(): ReplyTemplate(subject=v.subject, body=v.body, type=v.type or self.type)
                for tag, v in self.variants.items()
            },
        }
        return self

    def by_language(self) -> dict[str, ReplyTemplate]:
        """Every variant as the plain template a reply carries, by lower-cased language tag, the default
        first."""
        return dict(self._by_language)

    def variant(self, languages: Iterable[str] = ()) -> ReplyTemplate:
        """The variant for a letter in `languages` (most wanted first): the first of them the template
        has, matching the whole tag or else its prefix (`de-CH` gets `de` when there is no `de-CH`), in
        any case; the default variant when it has none of them."""
        for tag in languages:
            subtags = tag.lower().split("-")
            while subtags:
                found = self._by_language.get("-".join(subtags))
                if found is not None:
                    return found
                subtags.pop()
        return self._by_language[self.language.lower()]


class AutoResponseRule(_Model):
    """Conditions all AND-combined; no condition matches every letter. Several rules make an OR."""

    id: str = Field(min_length=1)
    name: str
    active: bool = True
    position: int = 0
    created_at: datetime | None = None
    """The rule answers only letters received at or after this moment (UTC when no offset is given), so
    that a new rule does not answer old mail read late; None: it answers letters of any age."""
    conditions: tuple[Condition, ...] = ()
    template: ReplyTemplate | str
    """The template itself, or the name of one under the configuration's `templates`."""

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class AuthorizedUsers(_Model):
    """Who may see a mailbox's letters."""

    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


class ReplyPolicy(StrEnum):
    FIRST_MATCH = "first_match"
    """At most one auto-reply per letter: the first active matching rule by position."""
    ALL_MATCHING = "all_matching"
    """Every matching rule sends its own reply (the original's behaviour)."""


class Mailbox(_Model):
    """A system mailbox such as support@ or sales@, watched over IMAP and answered over SMTP."""

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    organization: str
    label: str
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    imap: ImapSettings
    smtp: SmtpSettings
    folders: tuple[str, ...] = ("INBOX",)
    processing: Processing = NoProcessing()
    authorized: AuthorizedUsers = AuthorizedUsers()
    reply_policy: ReplyPolicy = ReplyPolicy.FIRST_MATCH
    limits: AutoReplyLimits = AutoReplyLimits()
    rules: tuple[AutoResponseRule, ...] = ()
    read_from: datetime | None = None
    """Where ingest starts reading a folder it has never read: letters that arrived (IMAP INTERNALDATE)
    at or after this moment. None: from when the mailbox was added (its first version on the
    configuration topic; reading from a file, when ingest first sees the folder), so a new mailbox's
    existing backlog makes no records and no replies. Once a folder has been read, changing this (or
    any other setting) never moves it."""

    @field_validator("read_from")
    @classmethod
    def _read_from_aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def active_rules(self) -> tuple[AutoResponseRule, ...]:
        """Active rules in their explicit order (position, then as written)."""
        return tuple(sorted((r for r in self.rules if r.active), key=lambda r: r.position))


class MailroomConfig(_Model):
    """The whole configuration: named templates and the mailboxes."""

    templates: dict[str, NamedTemplate] = {}
    mailboxes: tuple[Mailbox, ...] = ()

    @field_validator("templates", mode="before")
    @classmethod
    def _named(cls, value: object) -> object:
        """A plain ReplyTemplate given under a name is a NamedTemplate for every organization."""
        if isinstance(value, dict):
            return {
                k: v.model_dump() if isinstance(v, ReplyTemplate) and not isinstance(v, NamedTemplate) else v
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> MailroomConfig:
        seen: set[str] = set()
        addresses: dict[str, str] = {}
        labels: dict[tuple[str, str], str] = {}
        for box in self.mailboxes:
            if box.id in seen:
                raise ValueError(f"mailbox id {box.id!r} is used twice")
            seen.add(box.id)
            address = box.email.lower()
            if address in addresses:
                raise ValueError(
                    f"mailbox {box.id!r}: address {box.email!r} is the address of mailbox "
                    f"{addresses[address]!r} already (an address belongs to one mailbox in the whole system)"
                )
            addresses[address] = box.id
            label = (box.organization, box.label.casefold())
            if label in labels:
                raise ValueError(
                    f"mailbox {box.id!r}: label {box.label!r} is the label of mailbox {labels[label]!r} of "
                    f"organization {box.organization!r} already"
                )
            labels[label] = box.id
            rule_ids = [r.id for r in box.rules]
            for rule in box.rules:
                if rule_ids.count(rule.id) > 1:
                    raise ValueError(f"mailbox {box.id!r}: rule id {rule.id!r} is used twice")
                if isinstance(rule.template, str):
                    named = self.templates.get(rule.template)
                    if named is None:
                        raise ValueError(
                            f"mailbox {box.id!r}, rule {rule.id!r}: unknown template {rule.template!r}"
                        )
                    if named.organization not in (None, box.organization):
                        raise ValueError(
                            f"mailbox {box.id!r}, rule {rule.id!r}: template {rule.template!r} belongs to "
                            f"organization {named.organization!r}, not {box.organization!r}"
                        )
        return self

    def mailbox(self, mailbox_id: str) -> Mailbox | None:
        return next((b for b in self.mailboxes if b.id == mailbox_id), None)

    def template_of(self, rule: AutoResponseRule, languages: Iterable[str] = ()) -> ReplyTemplate:
        """What the reply is made of: the rule's own template, or the variant of the named one it refers
        to for a letter in `languages` (most wanted first; see `NamedTemplate.variant`)."""
        if isinstance(rule.template, str):
            return self.templates[rule.template].variant(languages)
        return rule.template

    def mailbox_addresses(self, organization: str | None = None) -> frozenset[str]:
        """The addresses mailroom answers as for an organization (every organization's: None),
        lower-cased. Mail from an organization's own addresses is never auto-answered by it; another
        organization's mailbox is a customer like any other."""
        return frozenset(
            b.email.lower() for b in self.mailboxes if organization is None or b.organization == organization
        )
