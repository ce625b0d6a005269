"""Lead and case mapping: only a thread's first letter, per the mailbox's processing, with stable ids."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from converter.mapping import NO_SUBJECT, link_for, record_for, split_name
from schemas.events import Address, CaseCreated, LeadCreated, LetterThreaded
from schemas.ids import case_id, lead_id
from schemas.records import record_of_thread
from tests.unit.builders import NOW, mailbox

LEAD = {"type": "lead", "owner": "sam", "source": "web", "channel": "contact-form"}
CASE = {
    "type": "case",
    "owner": "olga",
    "assignee": "ivan",
    "status": "new",
    "priority": "high",
    "tags": ["vip"],
}


def _letter(**fields: Any) -> LetterThreaded:
    values: dict[str, Any] = {
        "event_id": "threaded-1",
        "occurred_at": NOW - timedelta(minutes=1),
        "mailbox_id": "support",
        "organization": "acme",
        "letter_id": "letter-1",
        "message_id": "root@customer.example",
        "thread_id": "root@customer.example",
        "starts_thread": True,
        "sender": Address(name="Ann Lee", address="ann@customer.example"),
        "subject": "Printer broken",
        "text_body": "Floor 2 printer is broken.",
    }
    values.update(fields)
    return LetterThreaded(**values)


@pytest.mark.parametrize(
    ("name", "address", "expected"),
    [
        ("Ann Lee", "x@y", ("Ann", "Lee")),
        ("  Ann   Lee  ", "x@y", ("Ann", "Lee")),
        ("Mary Ann Lee", "x@y", ("Mary Ann", "Lee")),
        ("Lee, Ann", "x@y", ("Ann", "Lee")),
        ("Lee,Ann Marie", "x@y", ("Ann Marie", "Lee")),
        ("Cher", "x@y", ("Cher", "")),
        ("Jürgen Müller", "x@y", ("Jürgen", "Müller")),
        ("", "ann.lee@customer.example", ("Ann", "Lee")),
        ("", "ann_marie-lee@customer.example", ("Ann Marie", "Lee")),
        ("", "ANN@customer.example", ("Ann", "")),
        ("", "info@customer.example", ("Info", "")),
        ("", "...@customer.example", ("...", "")),
        ("   ", "bob@customer.example", ("Bob", "")),
    ],
)
def test_split_name(name: str, address: str, expected: tuple[str, str]) -> None:
    assert split_name(Address(name=name, address=address)) == expected


def test_the_first_letter_of_a_thread_becomes_a_lead() -> None:
    letter = _letter()

    lead = record_for(letter, mailbox(processing=LEAD), NOW)

    assert isinstance(lead, LeadCreated)
    assert lead.lead_id == lead.event_id == lead_id("support", "root@customer.example")
    assert (lead.organization, lead.mailbox_id) == ("acme", "support")
    assert lead.name == "Printer broken"
    assert (lead.first_name, lead.last_name, lead.email) == ("Ann", "Lee", "ann@customer.example")
    assert lead.notes == "Floor 2 printer is broken."
    assert (lead.owner, lead.source, lead.channel, lead.status) == ("sam", "web", "contact-form", "new")
    assert (lead.letter_id, lead.message_id, lead.thread_id) == (
        "letter-1",
        letter.message_id,
        letter.thread_id,
    )
    assert (lead.occurred_at, lead.produced_at) == (letter.occurred_at, NOW)


def test_the_first_letter_of_a_thread_becomes_a_case() -> None:
    letter = _letter()

    case = record_for(letter, mailbox(processing=CASE), NOW)

    assert isinstance(case, CaseCreated)
    assert case.case_id == case.event_id == case_id("support", "root@customer.example")
    assert case.subject == "Printer broken"
    assert case.description == "Floor 2 printer is broken."
    assert case.reporter_email == "ann@customer.example"
    assert (case.owner, case.assignee, case.status, case.priority, case.tags) == (
        "olga",
        "ivan",
        "new",
        "high",
        ("vip",),
    )
    assert (case.letter_id, case.thread_id) == ("letter-1", "root@customer.example")


@pytest.mark.parametrize("processing", [LEAD, CASE, {"type": "none"}])
def test_later_letters_of_a_thread_make_no_record(processing: dict[str, Any]) -> None:
    letter = _letter(message_id="answer@customer.example", starts_thread=False)

    assert record_for(letter, mailbox(processing=processing), NOW) is None


def test_no_processing_makes_no_record() -> None:
    assert record_for(_letter(), mailbox(processing={"type": "none"}), NOW) is None
    assert record_for(_letter(), mailbox(), NOW) is None


@pytest.mark.parametrize("subject", ["", "   ", "\t"])
@pytest.mark.parametrize("processing", [LEAD, CASE])
def test_a_letter_without_subject_is_named_no_subject(subject: str, processing: dict[str, Any]) -> None:
    record = record_for(_letter(subject=subject), mailbox(processing=processing), NOW)

    assert record is not None
    assert (
        (record.name if isinstance(record, LeadCreated) else record.subject) == NO_SUBJECT == "(no subject)"
    )


@pytest.mark.parametrize("processing", [LEAD, CASE])
def test_ids_come_from_the_mailbox_and_the_thread_only(processing: dict[str, Any]) -> None:
    box = mailbox(processing=processing)
    first = record_for(_letter(), box, NOW)
    replayed = record_for(
        _letter(event_id="other", letter_id="letter-2", subject="x"), box, NOW + timedelta(1)
    )
    other_thread = record_for(_letter(message_id="b@c", thread_id="b@c"), box, NOW)
    other_mailbox = record_for(_letter(), mailbox(processing=processing, mailbox_id="sales"), NOW)

    assert first is not None and replayed is not None and other_thread and other_mailbox
    assert first.event_id == replayed.event_id
    assert first.event_id != other_thread.event_id
    assert first.event_id != other_mailbox.event_id


@pytest.mark.parametrize("processing", [LEAD, CASE])
def test_machine_mail_makes_no_record_unless_the_mailbox_wants_it(processing: dict[str, Any]) -> None:
    automated = _letter(automated_because="automated sender: noreply@shop.example")

    assert record_for(automated, mailbox(processing=processing), NOW) is None
    kept = record_for(automated, mailbox(processing={**processing, "ignore_automated": False}), NOW)
    assert kept is not None


@pytest.mark.parametrize(
    ("processing", "expected_type", "make_id"),
    [({"type": "lead"}, "lead", lead_id), ({"type": "case"}, "case", case_id)],
)
def test_a_thread_has_one_record_id_per_mailbox(
    processing: dict[str, Any], expected_type: str, make_id: Any
) -> None:
    box = mailbox(processing=processing)

    assert record_of_thread(box, "t@c") == (expected_type, make_id(box.id, "t@c"))
    assert record_of_thread(mailbox(processing={"type": "none"}), "t@c") is None


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_a_later_letter_is_linked_to_the_record_with_its_ids_and_direction(direction: str) -> None:
    later = _letter(starts_thread=False, message_id="later@c", direction=direction, subject="Re: Help")

    link = link_for(later, "case", "case-1", NOW)
    again = link_for(
        _letter(starts_thread=False, message_id="later@c", letter_id="other-copy"), "case", "case-1", NOW
    )

    assert (link.record_type, link.record_id, link.message_id, link.direction) == (
        "case",
        "case-1",
        "later@c",
        direction,
    )
    assert (link.letter_id, link.thread_id, link.subject, link.sender) == (
        later.letter_id,
        later.thread_id,
        "Re: Help",
        later.sender,
    )
    assert link.event_id == again.event_id  # a second copy of the letter makes the same link
    assert link.event_id != link_for(later, "case", "case-2", NOW).event_id
