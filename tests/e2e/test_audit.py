"""`mailroom audit` over a mixed run of 20 letters in two mailboxes (the workers as separate processes, real
Kafka, Dovecot and SMTP): each letter's decision, record and reply delivery; after a rule change, the
letters the configuration would now decide differently; and audit sends, writes and joins nothing."""

from __future__ import annotations

import copy
import csv
import io
import json
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message
from deploy.local.pipeline import Pipeline, TopicReader, local_mailbox, wait_until
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import LetterDecided, ReplyFiled
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.fixtures_mail import MailUser
from tests.letters import letter

pytestmark = pytest.mark.e2e


def _rule(rule_id: str, word: str) -> dict[str, Any]:
    return {
        "id": rule_id,
        "name": f"Subjects with {word}",
        "conditions": [{"field": "subject", "operator": "contains", "value": word}],
        "template": {"subject": "Re: {{ letter.subject }}", "body": "We have your letter."},
    }


def _wait(pipeline: Pipeline, what: str, probe: Any, timeout: float = 90.0) -> Any:
    try:
        return wait_until(what, probe, timeout)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc


def _counts(reader: TopicReader) -> dict[str, int]:
    return {spec.name: reader.count(spec) for spec in topics.ALL_TOPICS}


def _groups(pipeline: Pipeline) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=pipeline.kafka.bootstrap_servers)
    try:
        return {str(group["group_id"]) for group in admin.list_groups()}
    finally:
        admin.close()


def _audit(pipeline: Pipeline, reader: TopicReader, *args: str) -> str:
    """Runs `mailroom audit ARGS`, asserting that it wrote nothing to any topic and joined no group."""
    counts, groups = _counts(reader), _groups(pipeline)
    out = pipeline.cli("audit", *args).stdout
    assert _counts(reader) == counts
    assert _groups(pipeline) == groups
    return out


def test_audit_lists_each_letters_decision_and_reply_and_marks_what_a_rule_change_would_decide_otherwise(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user_factory: Any
) -> None:
    desk, sales = mail_user_factory("desk"), mail_user_factory("sales")
    c1, c2, c3 = (mail_user_factory(f"customer{n}") for n in (1, 2, 3))

    def box(user: MailUser, box_id: str, kind: str, rule: dict[str, Any]) -> dict[str, Any]:
        return local_mailbox(
            box_id,
            user.address,
            user.password,
            dovecot.imap_port,
            smtp_relay.port,
            processing={"type": kind},
            rules=[rule],
        )

    config = {
        "mailboxes": [
            box(desk, "desk", "case", _rule("urgent", "urgent")),
            box(sales, "sales", "lead", _rule("pricing", "pricing")),
        ]
    }
    pipeline, reader = pipeline_factory(config)
    pipeline.start()

    sent: dict[str, str] = {}  # subject -> Message-ID

    def put(to: MailUser, sender: MailUser, subject: str, **headers: str) -> None:
        raw, mid = letter(sender.address, to.address, subject, headers=headers or None)
        append_message(dovecot.host, dovecot.imap_port, to.address, to.password, raw)
        sent[subject] = mid

    put(desk, c1, "urgent: printer on fire")
    put(desk, c2, "Question about invoice 17")
    put(desk, c1, "Re: urgent: printer on fire", **{"In-Reply-To": f"<{sent['urgent: printer on fire']}>"})
    put(desk, c3, "Hello there")
    put(desk, c2, "URGENT: order 12 missing")
    put(desk, c3, "urgent: out of office", **{"Auto-Submitted": "auto-replied"})
    for n, who in enumerate((c1, c2, c3, c1, c2, c3), 1):
        put(desk, who, f"General question {n}")
    put(sales, c1, "Pricing for 40 seats")
    put(sales, c2, "Demo request")
    put(sales, c3, "Pricing and a demo")
    put(sales, c1, "Newsletter signup")
    put(sales, c2, "Re: Demo request", **{"In-Reply-To": f"<{sent['Demo request']}>"})
    put(sales, c3, "Quote needed")
    put(sales, c2, "Pricing of the pro plan")
    put(sales, c3, "Thanks")
    assert len(sent) == 20

    _wait(
        pipeline,
        "20 decisions",
        lambda: len({d.letter_id for d in reader.events(topics.LETTERS_DECIDED, LetterDecided)}) == 20,
    )
    _wait(pipeline, "5 replies filed", lambda: len(reader.events(topics.REPLY_OUTCOMES, ReplyFiled)) == 5)
    _wait(pipeline, "17 records", lambda: reader.count(topics.LEADS) + reader.count(topics.CASES) == 17)
    _wait(pipeline, "2 links", lambda: reader.count(topics.LETTER_LINKS) == 2)

    shown = json.loads(_audit(pipeline, reader, "--json"))
    got = {entry["subject"]: entry for entry in shown["letters"]}
    assert set(got) == set(sent) and len(shown["letters"]) == 20
    assert {s: e["message_id"] for s, e in got.items()} == sent
    assert shown["summary"] == {"letters": 20, "replied": 5, "records": 17, "differ_now": 0}
    replied = {s for s, e in got.items() if e["decision"]["replied_with"]}
    assert replied == {
        "urgent: printer on fire",
        "URGENT: order 12 missing",
        "Pricing for 40 seats",
        "Pricing and a demo",
        "Pricing of the pro plan",
    }
    for subject in replied:
        [reply] = got[subject]["replies"]
        assert reply["delivery"]["state"] == "sent" and reply["delivery"]["smtp_code"] == 250
        assert reply["delivery"]["subject"] == f"Re: {subject}"
        assert reply["filing"]["state"] == "filed"
    follow_up = got["Re: urgent: printer on fire"]
    assert follow_up["thread"] == {
        "id": sent["urgent: printer on fire"],
        "new": False,
        "direction": "incoming",
        "automated": None,
    }
    assert follow_up["record"]["made"] == "linked"
    assert follow_up["record"]["id"] == got["urgent: printer on fire"]["record"]["id"]
    assert follow_up["decision"]["no_reply"].startswith("held back by a limit: 1 letter(s) of this thread")
    assert got["urgent: out of office"]["decision"]["no_reply"] == "loop guard: auto-submitted: auto-replied"
    assert got["urgent: out of office"]["record"] is None
    assert got["Demo request"]["record"]["type"] == "lead" and got["Hello there"]["record"]["type"] == "case"
    assert got["Demo request"]["decision"]["rules"] == [
        {
            "rule_id": "pricing",
            "rule_name": "Subjects with pricing",
            "outcome": "not matched",
            "detail": 'condition 1 of 1 failed: subject contains "pricing"',
        }
    ]
    assert all(e["decision"]["config_version"] == 1 for e in got.values())
    assert {e["now"]["text"] for e in got.values()} == {"same"}

    # The sales rule now answers demos instead of pricing (same rule, same created_at).
    changed = copy.deepcopy(config)
    changed["mailboxes"][1]["rules"][0]["conditions"][0]["value"] = "demo"
    assert "~ mailbox sales (changed, version 2)" in pipeline.apply(changed).stdout

    after = json.loads(_audit(pipeline, reader, "--json"))
    now = {e["subject"]: e["now"] for e in after["letters"]}
    assert {s: n["text"] for s, n in now.items() if n["status"] == "differs"} == {
        "Pricing for 40 seats": "differs: would not reply: no rule matched (was: reply with rule pricing)",
        "Demo request": "differs: would reply with rule pricing (was: no reply: no rule matched)",
        "Re: Demo request": "differs: would not reply: held back by a limit: 1 letter(s) of this thread "
        "already answered (limit 1) (was: no reply: no rule matched)",
        "Pricing of the pro plan": "differs: would not reply: no rule matched (was: reply with rule pricing)",
    }
    assert sum(n["text"] == "same" for n in now.values()) == 16
    assert after["summary"]["differ_now"] == 4
    # What was decided is described with the rule as it was then, "now" with the rule as it is.
    demo = next(e for e in after["letters"] if e["subject"] == "Demo request")
    assert demo["decision"]["rules"][0]["detail"] == 'condition 1 of 1 failed: subject contains "pricing"'
    assert demo["now"]["rules"][0]["outcome"] == "matched"

    table = _audit(pipeline, reader, "--mailbox", "sales").splitlines()
    assert table[0].startswith("RECEIVED (UTC)") and len(table) == 1 + 8 + 1
    assert table[-1] == "8 letters, 3 replied, 7 records made, 4 decided differently now"
    assert sum("differs: " in line for line in table) == 4

    rows = list(
        csv.DictReader(io.StringIO(_audit(pipeline, reader, "--csv", "--letter", sent["Demo request"])))
    )
    assert [(r["subject"], r["now_status"], r["record"].split()[0]) for r in rows] == [
        ("Demo request", "differs", "lead")
    ]

    unknown = pipeline.cli("audit", "--mailbox", "nowhere", check=False)
    assert unknown.returncode == 2 and "no mailbox 'nowhere'" in unknown.stderr
