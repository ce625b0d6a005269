"""One request handled with fake SMTP and IMAP edges: retries, refusals, filing, and resuming after a stop
between sending and filing. Each step's outcome is published before the next step begins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from responder.delivery import FILING_ATTEMPTS, Replies
from responder.errors import ImapError, SmtpError
from responder.imap import FiledCopy
from responder.outcomes import Outcomes, Send
from responder.smtp import Accepted
from schemas.config import ReplyTemplate, SmtpSettings
from schemas.errors import UnknownMailboxError
from schemas.events import (
    Address,
    Event,
    ReplyContent,
    ReplyDeferred,
    ReplyFailed,
    ReplyFiled,
    ReplyFilingFailed,
    ReplyRequested,
    ReplySent,
)
from tests.unit.builders import NOW, config, mailbox

OK = Accepted(250, "2.0.0 Ok: queued as 4711", ("ann@customer.example",))
COPY = FiledCopy("Sent", 17, 3, appended=True)


class FakeSender:
    def __init__(self, *results: Accepted | SmtpError) -> None:
        self.results = list(results)
        self.calls: list[tuple[bytes, str, tuple[str, ...]]] = []

    async def send(
        self, message: bytes, envelope_from: str, recipients: tuple[str, ...], smtputf8: bool = False
    ) -> Accepted:
        self.calls.append((message, envelope_from, recipients))
        result = self.results.pop(0)
        if isinstance(result, SmtpError):
            raise result
        return result


class FakeFolder:
    def __init__(self, *results: FiledCopy | ImapError) -> None:
        self.results = list(results)
        self.calls: list[tuple[bytes, str, datetime]] = []

    async def file(self, message: bytes, message_id: str, when: datetime) -> FiledCopy:
        self.calls.append((message, message_id, when))
        result = self.results.pop(0)
        if isinstance(result, ImapError):
            raise result
        return result


class Run:
    """A Replies for mailbox `support` with fake edges; `published` and `waits` record what it did."""

    def __init__(self, sender: FakeSender, folder: FakeFolder, outcomes: Outcomes | None = None) -> None:
        self.sender, self.folder = sender, folder
        self.outcomes = outcomes if outcomes is not None else Outcomes()
        self.published: list[Event] = []
        self.waits: list[float] = []
        box = mailbox(smtp=SmtpSettings(host="smtp.acme.example", attempts=3, first_retry_seconds=0.5))
        self.replies = Replies(
            config(box), self.outcomes, {"support": sender}, {"support": folder}, self._publish, self._sleep
        )

    async def _publish(self, event: Event) -> None:
        self.published.append(event)

    async def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def handle(self, request: ReplyRequested) -> list[str]:
        asyncio.run(self.replies.handle(request))
        return [e.event_type for e in self.published]  # type: ignore[attr-defined]


def _request(**changes: Any) -> ReplyRequested:
    values: dict[str, Any] = {
        "event_id": "crm-7",
        "occurred_at": NOW,
        "reply_id": "crm-7",
        "mailbox_id": "support",
        "kind": "employee",
        "author": "olga",
        "content": ReplyContent(subject="Re: Printer", body="Fixed."),
        "to": (Address(name="Ann", address="ann@customer.example"),),
        "in_reply_to": "m1@customer.example",
        "thread_id": "m1@customer.example",
        "mailbox_email": "support@acme.example",
    }
    values.update(changes)
    return ReplyRequested(**values)


def test_a_reply_is_sent_then_filed_from_the_bytes_sent() -> None:
    run = Run(FakeSender(OK), FakeFolder(COPY))

    assert run.handle(_request()) == ["ReplySent", "ReplyFiled"]

    sent, filed = run.published
    assert isinstance(sent, ReplySent) and isinstance(filed, ReplyFiled)
    ((message, envelope_from, recipients),) = run.sender.calls
    assert (sent.message, sent.smtp_code, sent.smtp_text, sent.attempts) == (message, 250, OK.text, 1)
    assert (envelope_from, recipients, sent.to) == ("support@acme.example", OK.recipients, OK.recipients)
    assert run.folder.calls == [(message, "reply-crm-7@acme.example", sent.occurred_at)]
    assert (filed.folder, filed.uidvalidity, filed.uid, filed.already_there) == ("Sent", 17, 3, False)
    assert sent.event_id != filed.event_id
    assert run.waits == []


def test_a_temporary_refusal_is_tried_again_with_growing_waits() -> None:
    busy = SmtpError("smtp: refused with 451", 451, "4.3.0 Try again", retriable=True)
    run = Run(FakeSender(busy, busy, OK), FakeFolder(COPY))

    assert run.handle(_request()) == ["ReplySent", "ReplyFiled"]

    assert run.waits == [0.5, 1.0]
    assert isinstance(run.published[0], ReplySent) and run.published[0].attempts == 3
    assert len({call[0] for call in run.sender.calls}) == 1  # the same bytes each time


def test_temporary_refusals_until_the_quick_tries_are_used_up_defer_the_reply() -> None:
    busy = SmtpError("smtp: refused with 421", 421, "4.7.0 Busy", retriable=True)
    run = Run(FakeSender(busy, busy, busy), FakeFolder())

    assert run.handle(_request()) == ["ReplyDeferred"]

    (deferred,) = run.published
    assert isinstance(deferred, ReplyDeferred)
    assert (deferred.smtp_code, deferred.smtp_text, deferred.attempts) == (421, "4.7.0 Busy", 3)
    assert deferred.retry_at - deferred.occurred_at == timedelta(seconds=4)  # 0.5 s doubled per try
    assert deferred.first_failed_at == deferred.occurred_at
    assert run.folder.calls == []
    step = run.outcomes.next_step("crm-7")
    assert isinstance(step, Send) and step.deferred == deferred
    assert run.outcomes.due(deferred.retry_at) == [deferred] and run.outcomes.due(deferred.occurred_at) == []


def test_a_deferred_reply_tried_again_is_sent_once_counting_every_try() -> None:
    busy = SmtpError("smtp: refused with 421", 421, "4.7.0 Busy", retriable=True)
    run = Run(FakeSender(busy, busy, busy, busy, OK), FakeFolder(COPY))

    assert run.handle(_request()) == ["ReplyDeferred"]
    assert run.handle(_request()) == ["ReplyDeferred", "ReplySent", "ReplyFiled"]  # the request, put back

    sent = run.published[1]
    assert isinstance(sent, ReplySent) and sent.attempts == 5
    assert run.handle(_request()) == ["ReplyDeferred", "ReplySent", "ReplyFiled"]  # done: nothing more


def test_a_reply_still_failing_after_the_retry_horizon_fails_for_good() -> None:
    busy = SmtpError("smtp: refused with 451", 451, "4.3.0 Try again", retriable=True)
    outcomes = Outcomes()
    long_ago = ReplyDeferred(
        event_id="d",
        occurred_at=NOW,
        reply_id="crm-7",
        mailbox_id="support",
        reason="busy",
        attempts=40,
        first_failed_at=datetime.now(UTC) - timedelta(hours=9),
        retry_at=NOW,
    )
    outcomes.defer(long_ago)
    run = Run(FakeSender(busy, busy, busy), FakeFolder(), outcomes)

    assert run.handle(_request()) == ["ReplyFailed"]

    (failed,) = run.published
    assert isinstance(failed, ReplyFailed)
    assert (failed.retriable, failed.attempts, failed.smtp_code) == (True, 43, 451)
    assert "tried 43 times since" in failed.reason


def test_an_operator_resends_a_failed_reply_and_only_a_failed_one() -> None:
    refused = SmtpError("smtp: refused with 550", 550, "5.1.1 No such user", retriable=False)
    run = Run(FakeSender(refused, OK, OK), FakeFolder(COPY, COPY))
    run.handle(_request())

    assert run.handle(_request()) == ["ReplyFailed"]  # asked again without resend: nothing happens
    assert run.handle(_request(resend=True)) == ["ReplyFailed", "ReplySent", "ReplyFiled"]
    assert run.handle(_request(resend=True)) == ["ReplyFailed", "ReplySent", "ReplyFiled"]  # sent: not again
    assert len(run.sender.calls) == 2
    assert len({e.event_id for e in run.published}) == 3  # the resend's outcomes are new events


def test_a_permanent_refusal_fails_at_once() -> None:
    refused = SmtpError("smtp: refused with 550", 550, "5.1.1 No such user", retriable=False)
    run = Run(FakeSender(refused, OK), FakeFolder())

    assert run.handle(_request()) == ["ReplyFailed"]

    assert len(run.sender.calls) == 1 and run.waits == []
    (failed,) = run.published
    assert isinstance(failed, ReplyFailed)
    assert (failed.smtp_code, failed.smtp_text, failed.retriable, failed.attempts) == (
        550,
        "5.1.1 No such user",
        False,
        1,
    )


def test_a_template_that_fails_is_a_failed_reply_and_nothing_is_sent() -> None:
    broken = ReplyTemplate(subject="x", body="{{ letter.nope.deeper }}")
    request = _request(kind="auto", content=None, author=None, rule_id="ack", template=broken)
    run = Run(FakeSender(), FakeFolder())

    assert run.handle(request) == ["ReplyFailed"]

    assert run.sender.calls == []
    assert "cannot build the reply" in run.published[0].reason  # type: ignore[attr-defined]


def test_a_filing_that_keeps_failing_is_reported_and_never_resends() -> None:
    down = ImapError("imap: connection lost")
    run = Run(FakeSender(OK), FakeFolder(*[down] * FILING_ATTEMPTS))

    assert run.handle(_request()) == ["ReplySent", "ReplyFilingFailed"]
    assert run.handle(_request()) == ["ReplySent", "ReplyFilingFailed"]  # the same request again: nothing

    failed = run.published[1]
    assert isinstance(failed, ReplyFilingFailed)
    assert (failed.reason, failed.retriable, failed.attempts) == (str(down), True, FILING_ATTEMPTS)
    assert len(run.sender.calls) == 1
    assert len(run.folder.calls) == FILING_ATTEMPTS


def test_a_refused_login_to_imap_is_reported_at_once() -> None:
    run = Run(FakeSender(OK), FakeFolder(ImapError("imap: login refused", retriable=False)))

    assert run.handle(_request()) == ["ReplySent", "ReplyFilingFailed"]

    assert len(run.folder.calls) == 1 and run.waits == []


def test_a_reply_sent_before_a_stop_is_filed_from_its_event_and_not_sent_again() -> None:
    first = Run(FakeSender(OK), FakeFolder(ImapError("stopped", retriable=False)))
    first.handle(_request())
    sent = first.published[0]
    # The worker stopped after ReplySent: a new one reads only that back.
    outcomes = Outcomes()
    outcomes.fold(sent.to_bytes())
    run = Run(FakeSender(), FakeFolder(FiledCopy("Sent", 17, 3, appended=False)), outcomes)

    assert run.handle(_request()) == ["ReplyFiled"]

    assert run.sender.calls == []
    assert isinstance(sent, ReplySent)
    assert run.folder.calls == [(sent.message, sent.message_id, sent.occurred_at)]
    assert run.published[0].already_there is True  # type: ignore[attr-defined]


def test_a_handled_reply_is_not_sent_again() -> None:
    run = Run(FakeSender(OK), FakeFolder(COPY))
    run.handle(_request())

    assert run.handle(_request()) == ["ReplySent", "ReplyFiled"]
    assert len(run.sender.calls) == 1 and len(run.folder.calls) == 1


def test_a_request_for_an_unknown_mailbox_is_an_error_for_the_dead_letters() -> None:
    with pytest.raises(UnknownMailboxError):
        Run(FakeSender(), FakeFolder()).handle(_request(mailbox_id="gone"))


def test_an_auto_reply_of_a_null_sender_mailbox_goes_from_the_null_sender() -> None:
    request = _request(
        kind="auto", content=None, author=None, rule_id="ack", template=ReplyTemplate(subject="s", body="b")
    )
    run = Run(FakeSender(OK), FakeFolder(COPY))
    box = mailbox(smtp=SmtpSettings(host="smtp.acme.example", envelope_from="null"))
    run.replies = Replies(
        config(box), run.outcomes, {"support": run.sender}, {"support": run.folder}, run._publish
    )

    run.handle(request)

    assert run.sender.calls[0][1] == ""


def test_two_requests_for_one_reply_handled_at_once_send_it_once() -> None:
    run = Run(FakeSender(OK), FakeFolder(COPY))

    async def both() -> None:
        await asyncio.gather(run.replies.handle(_request()), run.replies.handle(_request()))

    asyncio.run(both())

    assert [e.event_type for e in run.published] == ["ReplySent", "ReplyFiled"]  # type: ignore[attr-defined]
    assert len(run.sender.calls) == 1 and len(run.folder.calls) == 1
    assert run.replies._busy == {}  # nothing is kept once both are done
