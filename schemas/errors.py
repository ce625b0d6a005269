"""The root of every mailroom error, and the errors of the shared contract.

MailroomError
├── ConfigError          the configuration file or a value in it is invalid
├── EventError           bytes on a topic are not a valid event of the expected type
├── ImapConnectError     a mailbox's IMAP server cannot be reached or refuses the login
└── UnknownMailboxError  an event names a mailbox the configuration does not have
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["ConfigError", "EventError", "ImapConnectError", "MailroomError", "UnknownMailboxError"]


class MailroomError(Exception):
    """Root of mailroom's errors; `retriable` tells the error policy whether trying again can help."""

    retriable: ClassVar[bool] = False


class ConfigError(MailroomError):
    """The configuration is invalid; the message names the field path and the bad value."""


class EventError(MailroomError):
    """A message on a topic is not a valid event of the expected type."""


class UnknownMailboxError(MailroomError):
    """An event names a mailbox the configuration does not have."""


class ImapConnectError(MailroomError):
    """A mailbox's IMAP server cannot be reached (retriable) or refuses the credentials (not retriable)."""

    def __init__(self, message: str, retriable: bool, advice: str | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable  # type: ignore[misc]  # per instance: a login refusal is final
        self.advice = advice
        """What an administrator should do about it, when the answer suggests something."""
