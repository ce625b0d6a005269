"""Errors of the responder worker.

MailroomError
├── TemplateError    a reply template does not compile or render (not retriable)
├── SmtpError        the SMTP server refused or failed; 4xx and network drops are retriable, 5xx not
└── ImapError        filing a copy in the Sent folder failed; network drops are retriable, a refused
                     login or a NO/BAD answer not
"""

from __future__ import annotations

from schemas.errors import MailroomError

__all__ = ["ImapError", "SmtpError", "TemplateError"]


class TemplateError(MailroomError):
    """A reply template has a syntax error, names an unknown variable, or broke the sandbox's rules."""


class SmtpError(MailroomError):
    """The SMTP server did not take a reply; `code` and `text` are the server's own when it answered."""

    def __init__(self, message: str, code: int | None = None, text: str = "", retriable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.text = text
        self.retriable = retriable  # type: ignore[misc]  # per instance: depends on the reply code


class ImapError(MailroomError):
    """The IMAP server did not take the copy of a sent reply, or could not be reached."""

    def __init__(self, message: str, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable  # type: ignore[misc]  # per instance: depends on the failure
