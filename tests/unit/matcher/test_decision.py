"""decide: a received letter becomes its thread, its decision and its replies; replays agree."""

from __future__ import annotations

from datetime import timedelta

import pytest

from converter.mapping import record_for
from ingest.parse import letter_event
from matcher.decision import Outcome, created_record, decide, reply_subject
from matcher.errors import UnprocessableLetterError
from matcher.limits import ReplyHistory
from matcher.rules import compile_rules
from matcher.threads import ThreadIndex
from responder.render import render, template_variables
from schemas.config import (
    AutoResponseRule,
    CaseProcessing,
    LeadProcessing,
    Mailbox,
    MailroomConfig,
    NamedTemplate,
    NoProcessing,
    Processing,
    ReplyPolicy,
    ReplyTemplate,
    TemplateVariant,
)
from schemas.events import (
    Address,
    Event,
    LetterDecided,
    LetterReceived,
    LetterThreaded,
    ReplyRequested,
    parse_event,
)
from schemas.ids import case_id, lead_id, reply_id, reply_message_id
from tests.unit.builders import NOW, condition, config, letter_bytes, mailbox, rule
from tests.unit.matcher.test_languages import with_headers

NAMED = ReplyTemplate(subject="Thanks", body="Thanks, {{ letter.from_name }}")
URGENT = condition("subject", "contains", "urgent")


def _setup(
    *rules: AutoResponseRule, policy: ReplyPolicy = ReplyPolicy.FIRST_MATCH
) -> tuple[Mailbox, MailroomConfig]:
    box = mailbox(*rules or (rule("ack"),), reply_policy=policy)
    made = config(box, mailbox(mailbox_id="sales"), templates={"thanks": NAMED})
    return made.mailboxes[0], made


def _index(known: dict[str, str] | None = None) -> ThreadIndex:
    """An index that knows each Message-ID's thread (a thread's own id marks its first letter)."""
    index = ThreadIndex()
    for message_id, thread_id in (known or {}).items():
        index.remember("support", message_id, thread_id, message_id == thread_id)
    return index


def _received(raw: bytes, uid: int = 42) -> LetterReceived:
    return letter_event("support", "acme", "INBOX", 7, uid, NOW - timedelta(minutes=5), raw)


def _decide(
    raw: bytes,
    *rules: AutoResponseRule,
    known: dict[str, str] | None = None,
    policy: ReplyPolicy = ReplyPolicy.FIRST_MATCH,
) -> Outcome:
    box, made = _setup(*rules, policy=policy)
    return decide(_received(raw), box, made, compile_rules(box), _index(known), ReplyHistory(), NOW)


def test_a_first_letter_starts_a_thread_and_gets_a_reply() -> None:
    outcome = _decide(letter_bytes(subject="Printer broken", body="Please help"))

    threaded = outcome.threaded
    assert (threaded.thread_id, threaded.starts_thread) == ("m1@customer.example", True)
    assert threaded.sender == Address(name="Ann Lee", address="ann@customer.example")
    assert threaded.subject == "Printer broken"
    assert threaded.text_body == ""  # this mailbox makes no record: the body does not travel on
    assert threaded.automated_because is None
    assert outcome.decided.skipped_because is None
    assert [(r.rule_id, r.matched) for r in outcome.decided.rules] == [("ack", True)]
    assert [r.rule_id for r in outcome.replies] == ["ack"]
    assert outcome.decided.reply_ids == tuple(r.reply_id for r in outcome.replies)


def test_a_reply_answers_the_letter_in_its_thread() -> None:
    raw = letter_bytes(headers={"References": "<root@customer.example> <prev@acme.example>"})

    (reply,) = _decide(raw, known={"prev@acme.example": "root@customer.example"}).replies

    assert reply.mailbox_id == "support"
    assert reply.to == (Address(name="Ann Lee", address="ann@customer.example"),)
    assert reply.in_reply_to == "m1@customer.example"
    assert reply.references == ("root@customer.example", "prev@acme.example", "m1@customer.example")
    assert reply.thread_id == "root@customer.example"
    assert reply.mailbox_email == "support@acme.example"
    assert reply.mailbox_label == "Acme Support"
    assert reply.letter["subject"] == "Hello"
    assert reply.letter["reply_subject"] == "Re: Hello"
    assert reply.letter["from_address"] == "ann@customer.example"
    assert reply.letter["message_id"] == "m1@customer.example"


def test_an_auto_reply_goes_to_one_address_the_first_of_reply_to() -> None:
    raw = letter_bytes(headers={"Reply-To": "Orders <orders@customer.example>, b@customer.example"})

    (reply,) = _decide(raw).replies

    assert reply.to == (Address(name="Orders", address="orders@customer.example"),)


def test_a_reply_to_of_thirty_addresses_gets_one_reply_to_one_address() -> None:
    many = ", ".join(f"first{i}@x.example" for i in range(29)) + ", victim@victim.example"

    (reply,) = _decide(letter_bytes(headers={"Reply-To": many})).replies

    assert [a.address for a in reply.to] == ["first0@x.example"]


@pytest.mark.parametrize(
    ("reply_to", "expected"),
    [
        ("noreply@customer.example", "ann@customer.example"),
        ("No_Reply <no_reply@customer.example>", "ann@customer.example"),
        ("support@acme.example", "ann@customer.example"),  # the mailbox would answer itself
        ("Sales <SALES@acme.example>", "ann@customer.example"),  # another mailroom mailbox
        ("mailer-daemon@x.example, orders@customer.example", "orders@customer.example"),
    ],
)
def test_reply_to_is_vetted_and_the_first_address_fit_to_answer_is_answered(
    reply_to: str, expected: str
) -> None:
    (reply,) = _decide(letter_bytes(headers={"Reply-To": reply_to})).replies

    assert [a.address for a in reply.to] == [expected]


def test_limits_count_the_one_address_answered() -> None:
    box, made = _setup()
    rules, threads, history = compile_rules(box), ThreadIndex(), ReplyHistory()
    answered: list[str] = []
    for n in range(20):
        raw = letter_bytes(
            message_id=f"m{n}@customer.example",
            headers={"Reply-To": f"first{n}@x.example, victim@victim.example"},
        )
        outcome = decide(_received(raw, uid=n + 1), box, made, rules, threads, history, NOW)
        for reply in outcome.replies:
            history.remember(reply)
            answered.extend(a.address for a in reply.to)
        threads.remember_letter(outcome.threaded)

    assert answered == [f"first{n}@x.example" for n in range(20)]  # the victim gets nothing


def test_a_letter_with_only_reply_to_is_answered_there() -> None:
    raw = b"Reply-To: orders@customer.example\r\nSubject: hi\r\nMessage-ID: <r@c>\r\n\r\nbody"

    outcome = _decide(raw)

    assert outcome.threaded.sender == Address(address="orders@customer.example")
    assert [r.to for r in outcome.replies] == [(Address(address="orders@customer.example"),)]


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: nobody wrote this\r\n\r\nbody",
        b"From: undisclosed\r\nMessage-ID: <x@c>\r\n\r\nbody",
        b"",
        bytes(range(256)) * 4,
    ],
    ids=["no from", "from without address", "empty", "binary junk"],
)
def test_a_letter_without_any_sender_is_unprocessable(raw: bytes) -> None:
    with pytest.raises(UnprocessableLetterError) as caught:
        _decide(raw)

    message = str(caught.value)
    assert "support/INBOX" in message
    assert "UID 42" in message
    assert "no sender" in message


def _facts(event: Event) -> dict[str, object]:
    """An event without `produced_at`, the time it was written."""
    return event.model_dump(exclude={"produced_at"})


def test_reply_ids_are_deterministic_and_a_replay_decides_the_same() -> None:
    raw = letter_bytes()

    first = _decide(raw)
    again = _decide(raw)

    assert [_facts(r) for r in first.replies] == [_facts(r) for r in again.replies]
    assert _facts(first.decided) == _facts(again.decided)
    assert _facts(first.threaded) == _facts(again.threaded)
    assert first.threaded.event_id == again.threaded.event_id
    assert first.replies[0].reply_id == reply_id("support", "m1@customer.example", "ack")
    assert first.replies[0].event_id == first.replies[0].reply_id


def test_the_same_letter_in_another_folder_gets_the_same_reply_id() -> None:
    box, made = _setup()
    raw = letter_bytes()
    inbox = decide(_received(raw, uid=1), box, made, compile_rules(box), _index(), ReplyHistory(), NOW)
    archive = decide(
        letter_event("support", "acme", "Archive", 3, 99, NOW, raw),
        box,
        made,
        compile_rules(box),
        _index(),
        ReplyHistory(),
        NOW,
    )

    assert inbox.decided.reply_ids == archive.decided.reply_ids
    assert inbox.threaded.letter_id != archive.threaded.letter_id


def test_remembering_the_outcome_puts_the_letter_and_its_replies_in_its_thread() -> None:
    outcome = _decide(letter_bytes(), rule("a"), rule("b"), policy=ReplyPolicy.ALL_MATCHING)
    index = ThreadIndex()

    index.remember_letter(outcome.threaded)
    for reply in outcome.replies:
        index.remember_reply(reply)

    assert len(outcome.replies) == 2 and len(index) == 3
    for reply in outcome.replies:
        answer_to_reply = index.place(
            "support", "answer@c", (reply_message_id(reply.reply_id, "support@acme.example"),), ()
        )
        assert answer_to_reply.thread_id == "m1@customer.example" and not answer_to_reply.starts_thread
    assert index.place("support", "m1@customer.example", (), ()).starts_thread


def test_all_matching_sends_one_reply_per_matching_rule() -> None:
    rules = (
        rule("urgent", URGENT, position=1),
        rule("named", template="thanks", position=2),
        rule("miss", condition("subject", "contains", "invoice")),
    )

    outcome = _decide(letter_bytes(subject="URGENT"), *rules, policy=ReplyPolicy.ALL_MATCHING)

    assert [r.rule_id for r in outcome.replies] == ["urgent", "named"]
    assert len({r.reply_id for r in outcome.replies}) == 2
    assert outcome.replies[1].template == NAMED
    assert [(o.rule_id, o.matched) for o in outcome.decided.rules] == [
        ("miss", False),
        ("urgent", True),
        ("named", True),
    ]


def test_first_match_sends_one_reply() -> None:
    rules = (rule("urgent", URGENT, position=1), rule("ack", position=2))

    assert [r.rule_id for r in _decide(letter_bytes(subject="urgent"), *rules).replies] == ["urgent"]
    assert [r.rule_id for r in _decide(letter_bytes(subject="hello"), *rules).replies] == ["ack"]


def test_no_matching_rule_means_no_reply_but_a_decision() -> None:
    outcome = _decide(letter_bytes(subject="hello"), rule("urgent", URGENT))

    assert outcome.replies == ()
    assert outcome.decided.reply_ids == ()
    assert outcome.decided.skipped_because is None
    assert [(o.rule_id, o.matched, o.failed_condition) for o in outcome.decided.rules] == [
        ("urgent", False, 0)
    ]


@pytest.mark.parametrize(
    ("headers", "sender", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Ann <ann@customer.example>", "auto-submitted: auto-replied"),
        ({"X-Loop": "support@acme.example"}, "Ann <ann@customer.example>", "mailroom loop marker"),
        ({"List-Id": "<l.example>"}, "Ann <ann@customer.example>", "mailing list"),
        ({}, "Acme Sales <sales@acme.example>", "sent by a mailroom mailbox"),
        ({}, "mailer-daemon@mx.example", "automated sender: mailer-daemon@mx.example"),
    ],
)
def test_a_blocked_letter_is_threaded_but_gets_no_reply(
    headers: dict[str, str], sender: str, reason: str
) -> None:
    outcome = _decide(letter_bytes(sender=sender, headers=headers))

    assert outcome.replies == ()
    assert outcome.decided.skipped_because == reason
    assert outcome.decided.rules == ()
    assert outcome.threaded.automated_because == reason
    assert (outcome.threaded.thread_id, outcome.threaded.starts_thread) == ("m1@customer.example", True)


def test_the_decision_names_the_letter() -> None:
    decided = _decide(letter_bytes(subject="Printer")).decided

    assert (decided.mailbox_id, decided.message_id, decided.subject, decided.sender) == (
        "support",
        "m1@customer.example",
        "Printer",
        "ann@customer.example",
    )
    assert decided.occurred_at == NOW


def test_an_html_only_letter_is_matched_on_its_text() -> None:
    raw = (
        b"From: ann@customer.example\r\nMessage-ID: <h@c>\r\nContent-Type: text/html\r\n\r\n"
        b"<p>Our <b>invoice</b> is wrong</p>"
    )

    quoting = ReplyTemplate(subject="Re", body="You wrote: {{ letter.text_body }}")
    outcome = _decide(
        raw, rule("invoice", condition("body", "contains", "invoice is wrong"), template=quoting)
    )

    assert [r.rule_id for r in outcome.replies] == ["invoice"]
    assert outcome.replies[0].letter["text_body"] == "Our invoice is wrong"


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@x.example\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\nbroken",
        b"From: a@x.example\r\nContent-Type: text/plain; charset=x-nope\r\n\r\nHall\xf6chen",
        b"From: a@x.example\r\nSubject: =?x-nope?q?abc?=\r\n\r\n\x00\xff\xfe",
        b"From: a@x.example\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\ncut",
    ],
    ids=["no boundary", "unknown charset", "unknown header charset", "unterminated"],
)
def test_malformed_letters_still_give_events_that_serialize(raw: bytes) -> None:
    outcome = _decide(raw)

    assert parse_event(LetterThreaded, outcome.threaded.to_bytes()) == outcome.threaded
    assert parse_event(LetterDecided, outcome.decided.to_bytes()) == outcome.decided
    for reply in outcome.replies:
        assert parse_event(ReplyRequested, reply.to_bytes()) == reply


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "Re: Hello"),
        ("  Hello  ", "Re: Hello"),
        ("Re: Hello", "Re: Hello"),
        ("RE: Hello", "RE: Hello"),
        ("AW: Hallo", "AW: Hallo"),
        ("Sv: Hej", "Sv: Hej"),
        ("Antw: Hoi", "Antw: Hoi"),
        ("Regarding your order", "Re: Regarding your order"),
        ("Fwd: offer", "Re: Fwd: offer"),
        ("", "Re: (no subject)"),
        ("   ", "Re: (no subject)"),
    ],
)
def test_reply_subject(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


LEAD = LeadProcessing(type="lead")
CASE = CaseProcessing(type="case")


def _decide_in(processing: Processing, raw: bytes, known: dict[str, str] | None = None) -> Outcome:
    box = mailbox(rule("ack"), processing=processing)
    made = config(box)
    return decide(_received(raw), box, made, compile_rules(box), _index(known), ReplyHistory(), NOW)


@pytest.mark.parametrize(
    ("processing", "expected"),
    [
        (LEAD, {"type": "lead", "id": lead_id("support", "m1@customer.example")}),
        (CASE, {"type": "case", "id": case_id("support", "m1@customer.example")}),
    ],
    ids=["lead", "case"],
)
def test_the_reply_to_a_first_letter_names_the_record_it_creates(
    processing: Processing, expected: dict[str, str]
) -> None:
    outcome = _decide_in(processing, letter_bytes())

    (reply,) = outcome.replies
    assert reply.letter["record"] == expected
    # The id is the one the converter will publish for this letter.
    made = record_for(outcome.threaded, mailbox(processing=processing), NOW)
    assert made is not None and made.event_id == expected["id"]
    assert parse_event(ReplyRequested, reply.to_bytes()).letter["record"] == expected


def test_a_mailbox_that_makes_no_records_gives_no_record() -> None:
    (reply,) = _decide_in(NoProcessing(), letter_bytes()).replies

    assert reply.letter["record"] is None


@pytest.mark.parametrize("processing", [LEAD, CASE], ids=["lead", "case"])
def test_a_later_letter_of_a_thread_gives_no_record(processing: Processing) -> None:
    raw = letter_bytes(message_id="m2@customer.example", headers={"In-Reply-To": "<m1@customer.example>"})

    outcome = _decide_in(processing, raw, known={"m1@customer.example": "m1@customer.example"})

    assert not outcome.threaded.starts_thread
    (reply,) = outcome.replies
    assert reply.letter["record"] is None
    assert record_for(outcome.threaded, mailbox(processing=processing), NOW) is None


@pytest.mark.parametrize(
    ("processing", "expected"),
    [
        (LEAD, None),
        (CASE, None),
        (LeadProcessing(type="lead", ignore_automated=False), "lead"),
        (CaseProcessing(type="case", ignore_automated=False), "case"),
    ],
    ids=["lead", "case", "lead from machine mail", "case from machine mail"],
)
def test_machine_mail_has_a_record_only_where_the_mailbox_converts_it(
    processing: Processing, expected: str | None
) -> None:
    box = mailbox(processing=processing)
    outcome = _decide_in(processing, letter_bytes(headers={"Auto-Submitted": "auto-replied"}))

    record = created_record(outcome.threaded, box)

    assert outcome.replies == ()  # machine mail is never answered; the record is still what it is
    assert (record["type"] if record else None) == expected
    made = record_for(outcome.threaded, box, NOW)
    assert (made.event_id if made else None) == (record["id"] if record else None)


def test_a_reply_held_back_by_a_limit_is_recorded_in_the_decision_and_not_requested() -> None:
    box, made = _setup()
    first = decide(_received(letter_bytes()), box, made, compile_rules(box), _index(), ReplyHistory(), NOW)
    history = ReplyHistory()
    for reply in first.replies:
        history.remember(reply)
    follow_up = letter_bytes(
        message_id="m2@customer.example", headers={"In-Reply-To": "<m1@customer.example>"}
    )

    again = decide(
        _received(follow_up, uid=43),
        box,
        made,
        compile_rules(box),
        _index({"m1@customer.example": "m1@customer.example"}),
        history,
        NOW,
    )
    replay = decide(_received(letter_bytes()), box, made, compile_rules(box), _index(), history, NOW)

    assert again.replies == () and again.decided.reply_ids == ()
    assert again.decided.limited == ("ack: 1 letter(s) of this thread already answered (limit 1)",)
    assert [r.reply_id for r in replay.replies] == [r.reply_id for r in first.replies]  # a replay: the same


def test_the_body_travels_on_only_where_a_record_is_made_of_it() -> None:
    box = mailbox(rule("ack"), processing=CaseProcessing(type="case"))
    made = config(box)
    threads = ThreadIndex()

    def decided(raw: bytes, uid: int) -> Outcome:
        outcome = decide(_received(raw, uid), box, made, compile_rules(box), threads, ReplyHistory(), NOW)
        threads.remember_letter(outcome.threaded)
        return outcome

    first = decided(letter_bytes(body="Printer broken"), 1)
    follow_up = decided(
        letter_bytes(
            body="Still broken",
            message_id="m2@customer.example",
            headers={"In-Reply-To": "<m1@customer.example>"},
        ),
        2,
    )

    assert (first.threaded.starts_thread, first.threaded.text_body) == (True, "Printer broken")
    assert (follow_up.threaded.starts_thread, follow_up.threaded.text_body) == (False, "")


@pytest.mark.parametrize(
    ("template", "carried"),
    [
        (ReplyTemplate(subject="Re", body="Thanks, {{ letter.from_name }}"), False),
        (ReplyTemplate(subject="Re", body="You wrote:\n{{ letter.text_body | truncate(200) }}"), True),
        (ReplyTemplate(subject="{{ letter.text_body[:20] }}", body="b"), True),
    ],
)
def test_a_reply_request_carries_the_body_only_for_a_template_that_names_it(
    template: ReplyTemplate, carried: bool
) -> None:
    outcome = _decide(letter_bytes(body="Please help"), rule("ack", template=template))

    (reply,) = outcome.replies
    assert ("text_body" in reply.letter) is carried
    assert reply.letter.get("text_body", "Please help") == "Please help"


def test_two_letters_with_one_message_id_are_told_apart_and_each_answered() -> None:
    box = mailbox(rule("ack"), processing=CaseProcessing(type="case"))
    made = config(box)
    threads, history = ThreadIndex(), ReplyHistory()

    def decided(raw: bytes, uid: int) -> Outcome:
        outcome = decide(_received(raw, uid), box, made, compile_rules(box), threads, history, NOW)
        threads.remember_letter(outcome.threaded)
        for reply in outcome.replies:
            threads.remember_reply(reply)
            history.remember(reply)
        return outcome

    # A web form sends every letter with the same Message-ID.
    first = decided(letter_bytes(sender="ann@customer.example", body="My printer", message_id="form@web"), 1)
    copy = decided(letter_bytes(sender="ann@customer.example", body="My printer", message_id="form@web"), 2)
    other = decided(letter_bytes(sender="bob@other.example", body="My invoice", message_id="form@web"), 3)

    assert first.threaded.starts_thread and copy.threaded.starts_thread  # the same letter, read twice
    assert copy.threaded.thread_id == first.threaded.thread_id
    assert [r.reply_id for r in copy.replies] == [r.reply_id for r in first.replies]
    assert other.threaded.starts_thread and other.threaded.thread_id != first.threaded.thread_id
    assert other.threaded.message_id == "form@web"  # the header as it is; the key tells them apart
    assert other.threaded.letter_key.startswith("form@web#") and first.threaded.letter_key == "form@web"
    assert other.replies and other.replies[0].reply_id != first.replies[0].reply_id
    assert other.replies[0].in_reply_to == "form@web"
    assert other.decided.handled_as == other.threaded.letter_key
    assert first.decided.handled_as is None
    records = {created_record(o.threaded, box)["id"] for o in (first, other)}  # type: ignore[index]
    assert len(records) == 2


MULTILINGUAL = NamedTemplate(
    subject="Thank you",
    body="Hello {{ letter.from_name }}",
    variants={
        "de": TemplateVariant(subject="Danke", body="Hallo {{ letter.from_name }}"),
        "fr": TemplateVariant(subject="Merci", body="<p>Bonjour</p>", type="html"),
    },
)


def _multilingual(raw: bytes) -> ReplyRequested:
    box = mailbox(rule("own", URGENT, position=1), rule("ack", template="thanks", position=2))
    made = config(box, templates={"thanks": MULTILINGUAL})
    (reply,) = decide(_received(raw), box, made, compile_rules(box), _index(), ReplyHistory(), NOW).replies
    return reply


@pytest.mark.parametrize(
    ("headers", "template"),
    [
        ({"Content-Language": "de"}, ReplyTemplate(subject="Danke", body="Hallo {{ letter.from_name }}")),
        ({"Content-Language": "de-CH"}, ReplyTemplate(subject="Danke", body="Hallo {{ letter.from_name }}")),
        (
            {"Accept-Language": "it, fr;q=0.8, de;q=0.5"},
            ReplyTemplate(subject="Merci", body="<p>Bonjour</p>", type="html"),
        ),
        (
            {"Content-Language": "de", "Accept-Language": "fr"},
            ReplyTemplate(subject="Danke", body="Hallo {{ letter.from_name }}"),
        ),
        ({"Content-Language": "ja"}, ReplyTemplate(subject="Thank you", body="Hello {{ letter.from_name }}")),
        ({}, ReplyTemplate(subject="Thank you", body="Hello {{ letter.from_name }}")),
    ],
    ids=[
        "content language",
        "its prefix",
        "accepted, by q-value",
        "written before accepted",
        "none it has",
        "none",
    ],
)
def test_a_named_template_answers_in_the_letters_language(
    headers: dict[str, str], template: ReplyTemplate
) -> None:
    reply = _multilingual(with_headers(letter_bytes(), headers))

    assert reply.rule_id == "ack"
    assert reply.template == template


def test_a_german_letter_gets_the_german_reply_rendered() -> None:
    reply = _multilingual(with_headers(letter_bytes(subject="Drucker kaputt"), {"Content-Language": "de"}))

    rendered = render(reply.template, template_variables(reply.letter, "Acme", "s@acme.example", "ack", NOW))

    assert (rendered.subject, rendered.body) == ("Danke", "Hallo Ann Lee")
    assert parse_event(ReplyRequested, reply.to_bytes()) == reply  # it carries the plain chosen variant


def test_an_inline_template_is_the_same_in_every_language() -> None:
    reply = _multilingual(with_headers(letter_bytes(subject="urgent"), {"Content-Language": "de"}))

    assert (reply.rule_id, reply.template) == ("own", rule("x").template)
