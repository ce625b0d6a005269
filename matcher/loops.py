"""Pure: says why a letter must never be auto-answered (RFC 3834 and common practice), or None.

Checked in order; the first reason found is recorded in the letter's decision event.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from matcher.letter import ParsedLetter
from schemas.conditions import compile_regex
from schemas.config import AutoReplyLimits
from schemas.events import Address
from schemas.ids import LOOP_MARKER_HEADER

__all__ = ["auto_reply_block", "reply_recipient", "sent_by_mailroom"]

_ROBOT_SENDER = re.compile(
    r"^(mailer-daemon|postmaster|no[-_]?reply|do[-_]?not[-_]?reply|bounces?)([+._-].*)?@|^owner-|-request@|"
    r"-bounces?@",
    re.IGNORECASE,
)
_MAILER_DAEMON = re.compile(r"^<?mailer-daemon(@|>|$)", re.IGNORECASE)
_SUPPRESS = {"all", "autoreply", "oof"}
_DEFAULT_LIMITS = AutoReplyLimits()


def sent_by_mailroom(letter: ParsedLetter, sender: Address, own_addresses: Collection[str]) -> bool:
    """A letter from a mailroom mailbox: its replies, or employees' replies sent through it."""
    if sender.address.lower() in own_addresses:
        return True
    return any(v.strip().lower() in own_addresses for v in letter.headers.get(LOOP_MARKER_HEADER.lower(), ()))


def auto_reply_block(
    letter: ParsedLetter,
    sender: Address | None,
    own_addresses: Collection[str],
    limits: AutoReplyLimits = _DEFAULT_LIMITS,
) -> str | None:
    auto_submitted = (letter.header("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"auto-submitted: {auto_submitted}"
    autoreply = (letter.header("x-autoreply") or "").strip().lower()
    if autoreply and not autoreply.startswith("no"):
        return "x-autoreply"
    if "x-autorespond" in letter.headers:  # set by autoresponders whatever its value
        return "x-autorespond"
    suppress = {part.strip().lower() for part in (letter.header("x-auto-response-suppress") or "").split(",")}
    if suppress & _SUPPRESS:
        return "x-auto-response-suppress"
    for value in letter.headers.get(LOOP_MARKER_HEADER.lower(), ()):
        if value.strip().lower() in own_addresses:
            return "mailroom loop marker"
    if letter.content_type == "multipart/report":
        return "delivery or feedback report"
    return_path = letter.header("return-path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return "null return path"
    if return_path is not None and _MAILER_DAEMON.match(return_path.strip()):
        return "return path: mailer-daemon"
    if any(name.startswith("list-") for name in letter.headers):
        return "mailing list"
    precedence = (letter.header("precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk", "auto_reply"):
        return f"precedence: {precedence}"
    if not limits.reply_to_spam and (letter.header("x-spam-flag") or "").strip().lower() == "yes":
        return "flagged as spam"
    if sender is None:
        return "no sender address"
    if sender.address.lower() in own_addresses:
        return "sent by a mailroom mailbox"
    if _robot(sender.address, limits):
        return f"automated sender: {sender.address}"
    return None


def reply_recipient(
    reply_to: Sequence[Address],
    sender: Address,
    own_addresses: Collection[str],
    limits: AutoReplyLimits = _DEFAULT_LIMITS,
) -> Address:
    """The one address an auto-reply goes to: the first Reply-To address fit to answer, else the sender
    (which the loop guard has vetted). Not fit: a mailroom mailbox (it would answer itself) and robot
    addresses (noreply@ and the like, and the mailbox's `robot_senders`). Never more than one: a letter
    must not make mailroom write to a list of addresses of its sender's choosing."""
    for candidate in reply_to:
        if candidate.address.lower() not in own_addresses and not _robot(candidate.address, limits):
            return candidate
    return sender


def _robot(address: str, limits: AutoReplyLimits) -> bool:
    return bool(_ROBOT_SENDER.search(address)) or bool(
        limits.robot_senders
        and compile_regex(limits.robot_senders, case_sensitive=False).search(address.encode())
    )
