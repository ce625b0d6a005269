"""Errors of the matcher worker.

MailroomError
└── UnprocessableLetterError   the letter cannot be handled at all (goes to the dead-letter topic)
"""

from __future__ import annotations

from schemas.errors import MailroomError

__all__ = ["UnprocessableLetterError"]


class UnprocessableLetterError(MailroomError):
    """The letter lacks what every stage needs (a sender address); it is dead-lettered with its bytes."""
