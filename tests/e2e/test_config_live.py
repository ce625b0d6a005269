"""The configuration topic, followed live by the workers (separate processes, real Kafka, Dovecot and SMTP):
rules and mailboxes added and removed with `mailroom config apply` while everything runs, a replay after a
rule change, and two organizations whose mailboxes write to each other."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, fetch_messages, wait_for_messages
from deploy.local.pipeline import Pipeline, TopicReader, local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import CaseCreated, LetterDecided, ReplySent, event_type_of
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.fixtures_mail import MailUser
from tests.letters import letter

pytestmark = pytest.mark.e2e

ACK = {
    "id": "ack",
    "name": "Acknowledge",
    "template": {"subject": "Re: {{ letter.subject }}", "body": "Got it."},
}
URGENT = {
    "id": "urgent",
    "name": "Urgent ones",
    "conditions": [{"field": "subject", "operator": "contains", "value": "urgent"}],
    "template": {"subject": "We hurry: {{ letter.subject }}", "body": "On it."},
}


def _box(user: MailUser, box_id: str, dovecot: Dovecot, relay: SmtpRelay, **extra: Any) -> dict[str, Any]:
    return local_mailbox(box_id, user.address, user.password, dovecot.imap_port, relay.port, **extra)


def _wait(pipeline: Pipeline, what: str, probe: Any, timeout: float = 90.0) -> Any:
    try:
        return wait_until(what, probe, timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc


def _decided(reader: TopicReader, message_id: str) -> LetterDecided | None:
    found = [d for d in reader.events(topics.LETTERS_DECIDED, LetterDecided) if d.message_id == message_id]
    return found[-1] if found else None


def _subjects(dovecot: Dovecot, user: MailUser) -> list[str]:
    import email

    return sorted(
        str(email.message_from_bytes(raw)["Subject"])
        for raw in fetch_messages(dovecot.host, dovecot.imap_port, user.address, user.password)
    )


def test_rules_and_mailboxes_applied_while_the_workers_run_take_effect_and_a_replay_keeps_decisions(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, later, customer = (mail_user_factory(n) for n in ("desk", "later", "customer"))
    first = {"mailboxes": [_box(desk, "desk", dovecot, smtp_relay, processing={"type": "case"})]}
    pipeline, reader = pipeline_factory(first)
    pipeline.start()

    # No rule yet: a case, no reply.
    before, before_id = letter(customer.address, desk.address, "urgent: before the rule")
    append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, before)
    _wait(pipeline, "the first decision", lambda: _decided(reader, before_id))
    assert _decided(reader, before_id).reply_ids == ()  # type: ignore[union-attr]

    # A rule and a second mailbox, applied while everything runs.
    second = {
        "mailboxes": [
            _box(desk, "desk", dovecot, smtp_relay, processing={"type": "case"}, rules=[URGENT]),
            _box(later, "later", dovecot, smtp_relay, processing={"type": "case"}, rules=[ACK]),
        ]
    }
    shown = pipeline.apply(second).stdout
    assert "~ mailbox desk (changed, version 2)" in shown and "+ mailbox later (added, version 1)" in shown
    _wait(
        pipeline,
        "ingest reading the new mailbox",
        lambda: (
            "later" in pipeline.cli("mailboxes", "status", "--json").stdout
            and json.loads(pipeline.cli("mailboxes", "status", "--json").stdout)
        ),
    )
    time.sleep(3)  # every worker has had its seconds to follow
    after, after_id = letter(customer.address, desk.address, "urgent: after the rule")
    append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, after)
    new, new_id = letter(customer.address, later.address, "Hello new mailbox")
    append_message(dovecot.host, dovecot.imap_port, later.address, later.password, new)
    wait_for_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password, 2, timeout=90)
    decided_after = _decided(reader, after_id)
    assert decided_after is not None and decided_after.config_version == 2
    assert _subjects(dovecot, customer) == ["Re: Hello new mailbox", "We hurry: urgent: after the rule"]

    # The rule removed: the next urgent letter gets no reply.
    pipeline.apply({"mailboxes": [second["mailboxes"][0] | {"rules": []}, second["mailboxes"][1]]})
    time.sleep(3)
    gone, gone_id = letter(customer.address, desk.address, "urgent: after the rule was removed")
    append_message(dovecot.host, dovecot.imap_port, desk.address, desk.password, gone)
    decided_gone = _wait(pipeline, "the last decision", lambda: _decided(reader, gone_id))
    assert (decided_gone.reply_ids, decided_gone.config_version) == ((), 3)
    _wait(pipeline, "4 cases", lambda: len(reader.events(topics.CASES, CaseCreated)) >= 4 or None)

    # Then the rule comes back, answering everything, and the stream workers replay every topic: what was
    # decided stays decided; nothing is sent or created anew.
    pipeline.apply(
        {
            "mailboxes": [
                second["mailboxes"][0] | {"rules": [ACK], "processing": {"type": "lead"}},
                second["mailboxes"][1],
            ]
        }
    )
    time.sleep(3)
    pipeline.stop(["matcher", "converter", "responder"])
    requested = {json.loads(r.value)["reply_id"] for r in reader.records(topics.REPLIES_REQUESTED)}
    assert len(requested) == 2
    pipeline.cli("replay")
    pipeline.start(["matcher", "converter", "responder"])
    _wait(
        pipeline,
        "the replay",
        lambda: (
            reader.lag("matcher", topics.LETTERS_RECEIVED) == 0
            and reader.lag("converter", topics.LETTERS_THREADED) == 0
            and reader.lag("responder", topics.REPLIES_REQUESTED) == 0
        ),
    )
    time.sleep(2)
    # Asked again at most (the rule that asked for one is gone), never another.
    assert {json.loads(r.value)["reply_id"] for r in reader.records(topics.REPLIES_REQUESTED)} == requested
    kept = [d for d in reader.events(topics.LETTERS_DECIDED, LetterDecided) if d.kept_from is not None]
    assert {d.message_id for d in kept} == {before_id, after_id, gone_id, new_id}
    assert all(d.reply_ids == () for d in kept if d.message_id in (before_id, gone_id))
    assert Counter(event_type_of(r.value) for r in reader.records(topics.REPLY_OUTCOMES)) == {
        "ReplySent": 2,
        "ReplyFiled": 2,
    }
    assert len(reader.events(topics.CASES, CaseCreated)) == 4
    assert reader.count(topics.LEADS) == 0
    assert len(fetch_messages(dovecot.host, dovecot.imap_port, customer.address, customer.password)) == 2


def test_two_organizations_whose_mailboxes_write_to_each_other_each_get_a_case_and_a_reply(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    acme, globex = mail_user_factory("acme-desk"), mail_user_factory("globex-desk")
    pipeline, reader = pipeline_factory(
        {
            "mailboxes": [
                _box(acme, "acme-desk", dovecot, smtp_relay, processing={"type": "case"}, rules=[ACK]),
                _box(globex, "globex-desk", dovecot, smtp_relay, processing={"type": "case"}, rules=[ACK])
                | {"organization": "globex", "label": "Globex Desk"},
            ]
        }
    )
    pipeline.start()
    to_globex, to_globex_id = letter(acme.address, globex.address, "An order from Acme")
    to_acme, to_acme_id = letter(globex.address, acme.address, "An invoice from Globex")
    append_message(dovecot.host, dovecot.imap_port, globex.address, globex.password, to_globex)
    append_message(dovecot.host, dovecot.imap_port, acme.address, acme.password, to_acme)

    cases = _wait(
        pipeline,
        "2 cases",
        lambda: (lambda c: c if len(c) >= 2 else None)(reader.events(topics.CASES, CaseCreated)),
    )
    sent = _wait(
        pipeline,
        "2 replies",
        lambda: (lambda s: s if len(s) >= 2 else None)(reader.events(topics.REPLY_OUTCOMES, ReplySent)),
    )
    assert sorted((c.mailbox_id, c.organization, c.message_id) for c in cases) == [
        ("acme-desk", "acme", to_acme_id),
        ("globex-desk", "globex", to_globex_id),
    ]
    assert sorted(s.mailbox_id for s in sent) == ["acme-desk", "globex-desk"]
    # Each reply lands in the other organization's INBOX, as an auto-reply: it is not answered again.
    time.sleep(3)
    assert len(reader.events(topics.REPLY_OUTCOMES, ReplySent)) == 2
