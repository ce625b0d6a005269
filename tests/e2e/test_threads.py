"""Threads end to end: one record per thread whatever the order or the copies, follow-ups linked to it,
and every letter shared with the mailbox's users and roles. Real servers, workers as processes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from imapclient import IMAPClient

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message
from deploy.local.pipeline import TopicReader, local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import CaseCreated, LeadCreated, LetterLinked, LetterShared
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.fixtures_mail import MailUser
from tests.letters import letter

pytestmark = pytest.mark.e2e


def _box(user: MailUser, name: str, dovecot: Dovecot, relay: SmtpRelay, **kw: Any) -> dict[str, Any]:
    return local_mailbox(name, user.address, user.password, dovecot.imap_port, relay.port, **kw)


def _conversation(customer: str, desk: str, tag: str) -> list[tuple[bytes, str]]:
    """An original, a reply with References, a reply with only In-Reply-To."""
    original = letter(f"Ann Lee <{customer}>", desk, f"Printer {tag}", "It smokes.")
    first_id = original[1]
    reply = letter(
        customer,
        desk,
        f"Re: Printer {tag}",
        "Still smoking.",
        headers={"In-Reply-To": f"<{first_id}>", "References": f"<{first_id}>"},
    )
    short = letter(
        customer, desk, f"Re: Printer {tag}", "Now it is out.", headers={"In-Reply-To": f"<{reply[1]}>"}
    )
    return [original, reply, short]


def _settled(reader: TopicReader) -> bool:
    """Every letter threaded has been through the converter."""
    return (
        len(reader.records(topics.LETTERS_THREADED)) > 0
        and reader.lag("converter", topics.LETTERS_THREADED) == 0
    )


def test_threads_make_one_case_each_with_follow_ups_linked_in_any_order_and_copies(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory(
        {
            "mailboxes": [
                _box(
                    desk,
                    "desk",
                    dovecot,
                    smtp_relay,
                    folders=["INBOX", "Archive"],
                    processing={"type": "case"},
                    authorized={"users": ["olga"], "roles": ["support-agent"]},
                ),
            ]
        }
    )
    with IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False) as imap:
        imap.login(desk.address, desk.password)
        imap.create_folder("Archive")
    in_order = _conversation(customer.address, desk.address, "in order")
    reversed_ = _conversation(customer.address, desk.address, "reply first")
    copied = _conversation(customer.address, desk.address, "copied")[:1]

    def put(raw: bytes, folder: str = "INBOX") -> None:
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, raw, folder)

    for raw, _ in in_order:
        put(raw)
    outgoing = letter(
        f"Acme Desk <{desk.address}>",
        customer.address,
        "Re: Printer in order",
        "On our way.",
        headers={
            "In-Reply-To": f"<{in_order[0][1]}>",
            "References": f"<{in_order[0][1]}>",
            "X-Loop": desk.address,
            "Auto-Submitted": "auto-replied",
        },
    )
    put(reversed_[1][0])  # the reply (with References) before its original
    put(reversed_[0][0])
    put(reversed_[2][0])
    put(copied[0][0])
    put(copied[0][0])  # the same letter twice in the INBOX ...
    put(copied[0][0], "Archive")  # ... and once more in another folder
    pipeline.start()
    try:
        # Each folder is read on its own, so letters waiting in two folders come in either order. A reply
        # the mailbox sent is filed after the letter it answers was read, as it happens in a mailbox.
        wait_until(
            "the first letter read",
            lambda: any(
                json.loads(r.value)["headers"]["message_id"] == in_order[0][1]
                for r in reader.records(topics.LETTERS_RECEIVED)
            ),
        )
        put(outgoing[0], "Archive")  # a reply the mailbox sent, kept in a folder mailroom reads
        wait_until(
            "the converter to see all 10 letters",
            lambda: len(reader.records(topics.LETTERS_THREADED)) >= 10 and _settled(reader),
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    cases = reader.events(topics.CASES, CaseCreated)
    links = reader.events(topics.LETTER_LINKS, LetterLinked)
    assert sorted(c.subject for c in cases) == [
        "Printer copied",
        "Printer in order",
        "Re: Printer reply first",
    ]
    assert len({c.case_id for c in cases}) == 3
    by_case = {c.subject: c for c in cases}
    in_order_case = by_case["Printer in order"]
    assert in_order_case.message_id == in_order[0][1] and in_order_case.thread_id == in_order[0][1]
    assert sorted(
        (x.message_id, x.record_id, x.direction) for x in links if x.record_id == in_order_case.case_id
    ) == sorted(
        [
            *((mid, in_order_case.case_id, "incoming") for _, mid in in_order[1:]),
            (outgoing[1], in_order_case.case_id, "outgoing"),
        ]
    )
    # Out of order: the reply came first and made the case; the original and the short reply link to it.
    reply_first = by_case["Re: Printer reply first"]
    assert reply_first.thread_id == reversed_[0][1]
    assert sorted(x.message_id for x in links if x.record_id == reply_first.case_id) == sorted(
        [reversed_[0][1], reversed_[2][1]]
    )
    # Three copies of one letter: one case, no link.
    assert not [x for x in links if x.record_id == by_case["Printer copied"].case_id]
    assert len(links) == 5
    shared = reader.events(topics.LETTERS_SHARED, LetterShared)
    assert len(shared) == 10
    assert {(s.users, s.roles) for s in shared} == {(("olga",), ("support-agent",))}


def test_one_letter_to_two_mailboxes_makes_one_record_in_each(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    support, sales, customer = (mail_user_factory(n) for n in ("support", "sales", "customer"))
    pipeline, reader = pipeline_factory(
        {
            "mailboxes": [
                _box(support, "support", dovecot, smtp_relay, processing={"type": "case"}),
                _box(sales, "sales", dovecot, smtp_relay, processing={"type": "lead"}),
            ]
        }
    )
    raw, message_id = letter(
        f"=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <{customer.address}>",
        f"{support.address}, {sales.address}",
        "",
        "",
        html_only=True,
        html="<html><head><title>x</title></head><body><p>Both of you,<br>please.</p></body></html>",
    )
    append_message(dovecot.host, dovecot.imap_port, support.address, support.password, raw)
    append_message(dovecot.host, dovecot.imap_port, sales.address, sales.password, raw)
    pipeline.start()
    try:
        cases = wait_until("a case", lambda: reader.events(topics.CASES, CaseCreated))
        leads = wait_until("a lead", lambda: reader.events(topics.LEADS, LeadCreated))
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    assert [(c.mailbox_id, c.message_id, c.subject, c.description, c.reporter_email) for c in cases] == [
        ("support", message_id, "(no subject)", "Both of you,\nplease.", customer.address)
    ]
    assert [(x.mailbox_id, x.message_id, x.first_name, x.last_name, x.name, x.notes) for x in leads] == [
        ("sales", message_id, "Jürgen", "Müller", "(no subject)", "Both of you,\nplease.")
    ]
    assert cases[0].case_id != leads[0].lead_id


def test_changing_who_may_see_a_mailbox_affects_later_letters_only(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")

    def config(users: list[str]) -> dict[str, Any]:
        return {"mailboxes": [_box(desk, "desk", dovecot, smtp_relay, authorized={"users": users})]}

    pipeline, reader = pipeline_factory(config(["olga"]))
    before, before_id = letter(customer.address, desk.address, "Before")
    append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, before)
    pipeline.start()
    try:
        wait_until("the first letter shared", lambda: reader.events(topics.LETTERS_SHARED, LetterShared))
        pipeline.stop()
        pipeline.apply(config(["ivan", "petra"]))
        after, after_id = letter(customer.address, desk.address, "After")
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, after)
        pipeline.start()
        wait_until(
            "the second letter shared", lambda: len(reader.events(topics.LETTERS_SHARED, LetterShared)) >= 2
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    shared = {s.message_id: s.users for s in reader.events(topics.LETTERS_SHARED, LetterShared)}
    assert shared == {before_id: ("olga",), after_id: ("ivan", "petra")}
