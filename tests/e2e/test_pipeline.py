"""The walking skeleton end to end: real Kafka, Dovecot and SMTP; the four workers as separate processes."""

from __future__ import annotations

import email
import hashlib
from collections import Counter
from email import policy
from typing import Any

import pytest
from kafka import KafkaProducer

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, fetch_messages, wait_for_messages
from deploy.local.pipeline import local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import (
    CaseCreated,
    DeadLetter,
    LeadCreated,
    LetterDecided,
    ReplyFiled,
    ReplySent,
    event_type_of,
)
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.fixtures_mail import MailUser
from tests.letters import letter

pytestmark = pytest.mark.e2e

ACK = {
    "id": "ack",
    "name": "Acknowledge every letter",
    "template": {
        "subject": "Re: {{ letter.subject }}",
        "body": "Hello {{ letter.from_name }},\n\nwe have your letter.\n-- {{ mailbox.label }}",
    },
}


def _box(user: MailUser, name: str, dovecot: Dovecot, relay: SmtpRelay, **kw: Any) -> dict[str, Any]:
    return local_mailbox(name, user.address, user.password, dovecot.imap_port, relay.port, **kw)


def _inbox(dovecot: Dovecot, user: MailUser) -> list[email.message.EmailMessage]:
    raws = fetch_messages(dovecot.host, dovecot.imap_port, user.address, user.password)
    return [email.message_from_bytes(r, policy=policy.default) for r in raws]  # type: ignore[misc]


def test_letters_become_case_lead_and_auto_replies(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    support, sales, customer = (mail_user_factory(n) for n in ("support", "sales", "customer"))
    config = {
        "mailboxes": [
            _box(
                support,
                "support",
                dovecot,
                smtp_relay,
                rules=[ACK],
                processing={"type": "case", "owner": "olga", "assignee": "ivan", "priority": "high"},
            ),
            _box(
                sales,
                "sales",
                dovecot,
                smtp_relay,
                processing={"type": "lead", "owner": "sam", "source": "web"},
                rules=[
                    {
                        **ACK,
                        "id": "pricing",
                        "conditions": [{"field": "subject", "operator": "contains", "value": "PRICING"}],
                    }
                ],
            ),
        ]
    }
    pipeline, reader = pipeline_factory(config)
    pipeline.start()
    question, question_id = letter(
        f"Ann Lee <{customer.address}>", support.address, "Printer on fire", "It smokes since Monday."
    )
    inquiry, inquiry_id = letter(
        f'"Lee, Bob" <{customer.address}>', sales.address, "Pricing for 40 seats", "What would it cost?"
    )
    append_message(dovecot.host, dovecot.imap_port, support.address, support.password, question)
    append_message(dovecot.host, dovecot.imap_port, sales.address, sales.password, inquiry)

    try:
        cases = wait_until("a CaseCreated", lambda: reader.events(topics.CASES, CaseCreated))
        leads = wait_until("a LeadCreated", lambda: reader.events(topics.LEADS, LeadCreated))
        replies = wait_for_messages(
            dovecot.host, dovecot.imap_port, customer.address, customer.password, count=2, timeout=90
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    assert [
        (c.subject, c.description, c.reporter_email, c.owner, c.assignee, c.priority, c.message_id)
        for c in cases
    ] == [
        ("Printer on fire", "It smokes since Monday.", customer.address, "olga", "ivan", "high", question_id)
    ]
    assert [
        (x.name, x.first_name, x.last_name, x.email, x.notes, x.owner, x.source, x.message_id) for x in leads
    ] == [
        (
            "Pricing for 40 seats",
            "Bob",
            "Lee",
            customer.address,
            "What would it cost?",
            "sam",
            "web",
            inquiry_id,
        )
    ]

    got = {m["In-Reply-To"]: m for m in (email.message_from_bytes(r, policy=policy.default) for r in replies)}
    assert set(got) == {f"<{question_id}>", f"<{inquiry_id}>"}
    answer = got[f"<{question_id}>"]
    assert answer["Subject"] == "Re: Printer on fire"
    assert answer["From"].addresses[0].addr_spec == support.address
    assert answer["References"] == f"<{question_id}>"
    assert answer["Auto-Submitted"] == "auto-replied"
    assert answer["X-Loop"] == support.address
    assert "Hello Ann Lee," in answer.get_content()
    sent = wait_until("2 ReplySent", lambda: reader.events(topics.REPLY_OUTCOMES, ReplySent))
    assert {e.message_id for e in sent} == {m["Message-ID"].strip("<>") for m in got.values()}


def test_malformed_letter_is_dead_lettered_and_later_letters_still_flow(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    intake, customer = mail_user_factory("intake"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory(
        {"mailboxes": [_box(intake, "intake", dovecot, smtp_relay, rules=[ACK], processing={"type": "case"})]}
    )
    pipeline.start()
    malformed = b"Subject: no sender at all\r\nX-Garbage: \xff\xfe\r\n\r\n\x00\x01 binary junk"
    good, good_id = letter(customer.address, intake.address, "After the junk")
    append_message(dovecot.host, dovecot.imap_port, intake.address, intake.password, malformed)
    append_message(dovecot.host, dovecot.imap_port, intake.address, intake.password, good)

    try:
        dead = wait_until("a DeadLetter", lambda: reader.events(topics.DEAD_LETTERS, DeadLetter))
        cases = wait_until("a CaseCreated", lambda: reader.events(topics.CASES, CaseCreated))
        wait_for_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password, 1, timeout=60)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    assert len(dead) == 1
    assert dead[0].stage == "matcher"
    assert dead[0].original_kind == "letter"
    # The original is the letter exactly as the IMAP server serves it (Dovecot stores a NUL as 0x80).
    served = fetch_messages(dovecot.host, dovecot.imap_port, intake.address, intake.password)[0]
    assert dead[0].original == served
    assert served.startswith(b"Subject: no sender at all")
    assert "no sender address" in dead[0].reason
    assert dead[0].mailbox_id == "intake"
    assert [c.message_id for c in cases] == [good_id]


def test_replaying_every_topic_sends_no_second_reply_and_makes_no_second_record(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    pipeline, reader = pipeline_factory(
        {"mailboxes": [_box(desk, "desk", dovecot, smtp_relay, rules=[ACK], processing={"type": "lead"})]}
    )
    pipeline.start()
    for n in range(3):
        raw, _ = letter(customer.address, desk.address, f"Question {n}")
        append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, raw)
    try:
        wait_for_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password, 3, timeout=90)
        wait_until("3 leads", lambda: len(reader.events(topics.LEADS, LeadCreated)) == 3)
        wait_until("3 replies filed", lambda: len(reader.events(topics.REPLY_OUTCOMES, ReplyFiled)) == 3)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    pipeline.stop()
    requested, threaded = (
        len(reader.records(topics.REPLIES_REQUESTED)),
        len(reader.records(topics.LETTERS_THREADED)),
    )
    rewound = pipeline.cli("replay").stdout
    for worker in ("matcher", "converter", "responder"):
        assert f"{pipeline.kafka.group(worker)}: 2 partitions rewound to the start" in rewound
    pipeline.start()
    try:
        # The matcher derives everything again from the start of the received letters (at least once) ...
        wait_until(
            "the matcher's replay",
            lambda: (
                reader.lag("matcher", topics.LETTERS_RECEIVED) == 0
                and len(reader.records(topics.REPLIES_REQUESTED)) >= requested + 3
                and len(reader.records(topics.LETTERS_THREADED)) >= threaded + 3
            ),
        )
        # ... and converter and responder consume all of it again.
        wait_until("the converter to catch up", lambda: reader.lag("converter", topics.LETTERS_THREADED) == 0)
        wait_until(
            "the responder to catch up", lambda: reader.lag("responder", topics.REPLIES_REQUESTED) == 0
        )
    except TimeoutError as exc:
        state = {
            "requested before/now": (requested, len(reader.records(topics.REPLIES_REQUESTED))),
            "threaded before/now": (threaded, len(reader.records(topics.LETTERS_THREADED))),
            "lag": {
                w: reader.lag(w, t)
                for w, t in (
                    ("matcher", topics.LETTERS_RECEIVED),
                    ("converter", topics.LETTERS_THREADED),
                    ("responder", topics.REPLIES_REQUESTED),
                )
            },
        }
        raise AssertionError(f"{exc}: {state}\n{dump_logs(pipeline)}") from exc

    leads = reader.events(topics.LEADS, LeadCreated)
    assert len(leads) == 3 and len({x.lead_id for x in leads}) == 3
    # Each reply once: sent, then its copy filed in the Sent folder.
    outcomes = Counter(event_type_of(r.value) for r in reader.records(topics.REPLY_OUTCOMES))
    assert outcomes == {"ReplySent": 3, "ReplyFiled": 3}
    assert len(fetch_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password)) == 3
    assert "already handled; not sent again" in pipeline.log("responder")


def test_first_match_sends_one_reply_where_two_rules_match_and_all_matching_two(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    first, every, customer = (mail_user_factory(n) for n in ("first", "every", "customer"))
    rules = [
        {
            "id": "help",
            "name": "Help",
            "position": 1,
            "conditions": [{"field": "subject", "operator": "contains", "value": "help"}],
            "template": {"subject": "[help] {{ letter.reply_subject }}", "body": "We help."},
        },
        {
            "id": "ack",
            "name": "Ack",
            "position": 2,
            "template": {"subject": "[ack] {{ letter.reply_subject }}", "body": "Got it."},
        },
    ]
    pipeline, reader = pipeline_factory(
        {
            "mailboxes": [
                _box(first, "first", dovecot, smtp_relay, rules=rules),
                _box(every, "every", dovecot, smtp_relay, rules=rules, reply_policy="all_matching"),
            ]
        }
    )
    pipeline.start()
    for box in (first, every):
        raw, _ = letter(customer.address, box.address, "Need HELP now")
        append_message(dovecot.host, dovecot.imap_port, box.address, box.password, raw)
    try:
        wait_for_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password, 3, timeout=90)
        wait_until("3 replies sent", lambda: len(reader.events(topics.REPLY_OUTCOMES, ReplySent)) >= 3)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    replies = [m for m in _inbox(dovecot, customer)]
    by_sender = sorted((m["From"].addresses[0].addr_spec, m["Subject"]) for m in replies)
    assert by_sender == sorted(
        [
            (first.address, "[help] Re: Need HELP now"),
            (every.address, "[help] Re: Need HELP now"),
            (every.address, "[ack] Re: Need HELP now"),
        ]
    )
    assert len(reader.events(topics.REPLY_OUTCOMES, ReplySent)) == 3
    decided = {d.mailbox_id: d for d in reader.events(topics.LETTERS_DECIDED, LetterDecided)}
    assert [len(decided["first"].reply_ids), len(decided["every"].reply_ids)] == [1, 2]
    assert [r.rule_id for r in decided["first"].rules] == ["help"]  # first_match stops at the first match


def test_a_letter_with_a_large_body_flows_and_an_event_over_the_limit_is_dead_lettered_within_it(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, customer = mail_user_factory("desk"), mail_user_factory("customer")
    quoting = {
        **ACK,
        "template": {"subject": "Re: {{ letter.subject }}", "body": "{{ letter.text_body[:100] }}"},
    }
    pipeline, reader = pipeline_factory(
        {"mailboxes": [_box(desk, "desk", dovecot, smtp_relay, processing={"type": "case"}, rules=[quoting])]}
    )
    body = "A long report. " * 100_000  # 1.5 MB of text: every event made of it is over 1,000,000 bytes
    big, big_id = letter(customer.address, desk.address, "Big report", body)
    small, small_id = letter(customer.address, desk.address, "Small question", "Just this.")
    pipeline.start()
    producer = KafkaProducer(
        bootstrap_servers=pipeline.kafka.bootstrap_servers, max_request_size=17 * 1024 * 1024
    )
    junk = b"{" + b"x" * (15 * 1024 * 1024)  # an event no stream worker can read, near the size limit
    producer.send(pipeline.kafka.topic(topics.LETTERS_RECEIVED), key=b"desk", value=junk).get(timeout=60)
    producer.close()
    append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, big)
    append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, small)
    try:
        wait_for_messages(
            dovecot.host, dovecot.imap_port, customer.address, customer.password, 2, timeout=120
        )
        cases = wait_until(
            "two cases", lambda: c if len(c := reader.events(topics.CASES, CaseCreated)) >= 2 else None
        )
        (dead,) = wait_until("the dead letter", lambda: reader.events(topics.DEAD_LETTERS, DeadLetter))
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc

    by_letter = {c.message_id: c for c in cases}
    assert by_letter[big_id].description == body.strip() and by_letter[small_id].description == "Just this."
    assert (dead.stage, dead.error_type, dead.original_kind) == ("matcher", "EventError", "event")
    assert dead.original_truncated and dead.original_size == len(junk)
    assert dead.original == junk[: len(dead.original)]
    assert dead.original_sha256 == hashlib.sha256(junk).hexdigest()
    assert max(len(r.value) for r in reader.records(topics.DEAD_LETTERS)) <= pipeline.kafka.max_message_bytes
