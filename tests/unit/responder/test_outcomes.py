"""What is left to do for a reply, from the outcomes read back: send, file only, or nothing."""

from __future__ import annotations

from responder.outcomes import Done, File, Outcomes, Send
from schemas.events import Event, ReplyFailed, ReplyFiled, ReplyFilingFailed, ReplySent
from tests.unit.builders import NOW

MESSAGE = b"Message-ID: <reply-r1@acme.example>\r\n\r\nHi\r\n"


def _sent(reply_id: str = "r1", message: bytes = MESSAGE) -> ReplySent:
    return ReplySent(
        event_id=f"o-{reply_id}",
        occurred_at=NOW,
        reply_id=reply_id,
        mailbox_id="support",
        message_id=f"reply-{reply_id}@acme.example",
        to=("ann@customer.example",),
        message=message,
    )


def _filed(reply_id: str = "r1") -> ReplyFiled:
    return ReplyFiled(
        event_id=f"f-{reply_id}",
        occurred_at=NOW,
        reply_id=reply_id,
        mailbox_id="support",
        message_id=f"reply-{reply_id}@acme.example",
        folder="Sent",
    )


def _folded(*events: Event | bytes) -> Outcomes:
    outcomes = Outcomes()
    for event in events:
        outcomes.fold(event if isinstance(event, bytes) else event.to_bytes())
    return outcomes


def test_a_reply_without_outcome_is_sent() -> None:
    assert _folded(_sent("other"), _filed("other")).next_step("r1") == Send()


def test_a_reply_sent_but_not_filed_is_filed_from_its_bytes_not_sent() -> None:
    step = _folded(_sent()).next_step("r1")

    assert isinstance(step, File)
    assert step.sent.message == MESSAGE


def test_a_filed_reply_is_done_and_its_bytes_are_let_go() -> None:
    outcomes = _folded(_sent(), _filed())

    assert outcomes.next_step("r1") == Done("sent and filed")
    assert len(outcomes) == 1


def test_a_reply_whose_filing_failed_is_done() -> None:
    failed = ReplyFilingFailed(
        event_id="x", occurred_at=NOW, reply_id="r1", mailbox_id="support", message_id="m", reason="down"
    )

    assert _folded(_sent(), failed).next_step("r1") == Done("sent; filing its copy failed")


def test_a_failed_reply_is_done() -> None:
    failed = ReplyFailed(event_id="x", occurred_at=NOW, reply_id="r1", mailbox_id="support", reason="550")

    assert _folded(failed).next_step("r1") == Done("its sending failed")


def test_a_reply_sent_before_copies_were_filed_is_done() -> None:
    assert _folded(_sent(message=b"")).next_step("r1") == Done("sent before mailroom filed copies")


def test_a_sent_event_read_again_after_the_filing_does_not_reopen_it() -> None:
    outcomes = _folded(_sent(), _filed())
    outcomes.sent(_sent())

    assert isinstance(outcomes.next_step("r1"), Done)


def test_an_unreadable_sent_event_is_never_sent_again() -> None:
    outcomes = _folded(b'{"event_type": "ReplySent", "reply_id": "r1"}', b"not json", b"{}")

    assert isinstance(outcomes.next_step("r1"), Done)
    assert len(outcomes) == 1
