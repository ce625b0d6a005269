"""Errors of the ingest worker.

MailroomError
└── ImapError              the IMAP server failed or dropped the connection (retriable)
    └── ImapLoginError     the server refused the credentials (not retriable until reconfigured)
"""

from __future__ import annotations

from typing import ClassVar

from schemas.errors import MailroomError

__all__ = ["ImapError", "ImapLoginError"]


class ImapError(MailroomError):
    """The IMAP server failed or the connection dropped; it is tried again after a while."""

    retriable: ClassVar[bool] = True

    def __init__(self, message: str, advice: str | None = None) -> None:
        super().__init__(message)
        self.advice = advice


class ImapLoginError(ImapError):
    """The IMAP server refused the mailbox's credentials."""

    retriable: ClassVar[bool] = False
