"""The demo: local Kafka, Dovecot and SMTP; the four workers and the web admin as separate processes; a few
sample letters APPENDed to two system mailboxes; then the leads, cases, replies and decisions that came out.

    python -m deploy.local.demo          (or: make demo)        prints the report, then stops everything
    python -m deploy.local.demo --keep   (or: make demo-keep)   keeps everything running for a person to
                                                                click through the web admin, until Ctrl-C

Uses the broker named by KAFKA_BOOTSTRAP_SERVERS when set, else starts one from the Maven jars.
"""

from __future__ import annotations

import email
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import urllib.request
from contextlib import ExitStack
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from deploy.local.dovecot import Dovecot
from deploy.local.kafka import KafkaBroker
from deploy.local.mailbox import append_message, wait_for_messages
from deploy.local.pipeline import Pipeline, TopicReader, local_mailbox, wait_until
from deploy.local.ports import free_port
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import (
    CaseCreated,
    DeadLetter,
    LeadCreated,
    LetterDecided,
    LetterLinked,
    LetterShared,
    ReplyFailed,
    ReplySent,
    utcnow,
)

PASSWORD = "demo-password"
ADMIN_USER, ADMIN_PASSWORD = "admin", "mailroom-demo"
"""The web admin's demo user: admin of organization acme (and viewer of globex)."""
SUPPORT, SALES = "support@acme.test", "sales@acme.test"
ANN, BOB = "ann.lee@customer.test", "bob@customer.test"


def _letter(sender: str, to: str, subject: str, body: str, **headers: str) -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = mid = make_msgid(domain="customer.test")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes(), mid.strip("<>")


def _config(imap_port: int, smtp_port: int) -> dict[str, Any]:
    thanks = {
        "subject": "{{ letter.reply_subject }}",
        "body": "Hello {{ letter.from_name or letter.from_address }},\n\n"
        "thank you for writing to {{ mailbox.label }}. We will answer within one working day.\n",
    }
    return {
        "templates": {"thanks": thanks},
        "mailboxes": [
            local_mailbox(
                "support",
                SUPPORT,
                PASSWORD,
                imap_port,
                smtp_port,
                processing={"type": "case", "owner": "olga", "priority": "normal"},
                authorized={"roles": ["support-agent"]},
                rules=[{"id": "ack", "name": "Acknowledge every letter", "template": "thanks"}],
            ),
            local_mailbox(
                "sales",
                SALES,
                PASSWORD,
                imap_port,
                smtp_port,
                processing={"type": "lead", "owner": "sam", "source": "email"},
                authorized={"users": ["sam"]},
                rules=[
                    {
                        "id": "pricing",
                        "name": "Price questions",
                        "position": 1,
                        "conditions": [{"field": "subject", "operator": "contains", "value": "price"}],
                        "template": {
                            "type": "html",
                            "subject": "Our prices: {{ letter.subject }}",
                            "body": "<p>Hello {{ letter.from_name }},</p><p>our price list is attached "
                            "to this reply soon; {{ mailbox.label }} will call you.</p>",
                        },
                    },
                    {"id": "ack", "name": "Everything else", "position": 2, "template": "thanks"},
                ],
            ),
        ],
    }


def _samples() -> list[tuple[str, bytes, str]]:
    """(mailbox, letter, what it shows)."""
    question, question_id = _letter(f"Ann Lee <{ANN}>", SUPPORT, "My printer is on fire", "It smokes.")
    follow_up, _ = _letter(
        f"Ann Lee <{ANN}>",
        SUPPORT,
        "Re: My printer is on fire",
        "Still smoking.",
        In_Reply_To=f"<{question_id}>",
        References=f"<{question_id}>",
    )
    return [
        ("support", question, "a question: a case and a reply"),
        ("support", follow_up, "a follow-up in the same thread: linked to the case, no second auto-reply"),
        (
            "sales",
            _letter(f"Bob Stone <{BOB}>", SALES, "Price for 40 seats?", "What would it cost?")[0],
            "a price question: a lead and the html price reply",
        ),
        (
            "support",
            _letter(
                "News <news@vendor.test>", SUPPORT, "Our newsletter", "Hi all", List_Id="<news.vendor.test>"
            )[0],
            "a newsletter: no reply (mailing list)",
        ),
        (
            "sales",
            _letter(
                f"Bob Stone <{BOB}>", SALES, "Out of office", "Back Monday", Auto_Submitted="auto-replied"
            )[0],
            "an out-of-office: no reply (auto-submitted)",
        ),
        (
            "support",
            b"Subject: who sent this?\r\n\r\nno sender at all\r\n",
            "a letter without sender: dead-lettered",
        ),
    ]


def _say(text: str = "") -> None:
    print(text, flush=True)


def _report(reader: TopicReader, dovecot: Dovecot) -> None:
    _say(f"\nLeads (topic {reader.kafka.topic(topics.LEADS)}):")
    for lead in reader.events(topics.LEADS, LeadCreated):
        _say(f"  {lead.name!r} from {lead.first_name} {lead.last_name} <{lead.email}>, owner {lead.owner}")
    _say(f"\nCases (topic {reader.kafka.topic(topics.CASES)}):")
    for case in reader.events(topics.CASES, CaseCreated):
        _say(f"  {case.subject!r} by {case.reporter_email}, owner {case.owner}, priority {case.priority}")
    _say(f"\nFollow-ups linked to their record (topic {reader.kafka.topic(topics.LETTER_LINKS)}):")
    for link in reader.events(topics.LETTER_LINKS, LetterLinked):
        _say(f"  {link.subject!r} ({link.direction}) -> {link.record_type} {link.record_id}")
    _say(f"\nWho was told (topic {reader.kafka.topic(topics.LETTERS_SHARED)}):")
    for shared in reader.events(topics.LETTERS_SHARED, LetterShared):
        people = ", ".join([*(f"user {u}" for u in shared.users), *(f"role {r}" for r in shared.roles)])
        _say(f"  {shared.mailbox_id:8} {shared.subject[:30]!r:34} -> {people or 'nobody'}")
    _say(f"\nDecisions (topic {reader.kafka.topic(topics.LETTERS_DECIDED)}):")
    for decision in reader.events(topics.LETTERS_DECIDED, LetterDecided):
        matched = [r.rule_name for r in decision.rules if r.matched]
        why = (
            decision.skipped_because
            or (f"held back: {decision.limited[0].partition(': ')[2]}" if decision.limited else None)
            or (f"rule {', '.join(matched)}" if matched else "no rule matched")
        )
        _say(f"  {decision.mailbox_id:8} {decision.sender:26} {decision.subject[:30]!r:34} -> {why}")
    _say("\nReplies, as the customers read them in their own mailboxes:")
    for user in (ANN, BOB):
        for raw in wait_for_messages(dovecot.host, dovecot.imap_port, user, PASSWORD, 0, timeout=5):
            msg = email.message_from_bytes(raw, policy=policy.default)
            _say(f"  to {user}: {msg['Subject']!r} from {msg['From']}, In-Reply-To {msg['In-Reply-To']}")
    _say(f"\nDead letters (topic {reader.kafka.topic(topics.DEAD_LETTERS)}):")
    for dead in reader.events(topics.DEAD_LETTERS, DeadLetter):
        _say(f"  {dead.stage}: {dead.reason} ({len(dead.original)} original bytes kept)")


def _admin_port() -> int:
    """MAILROOM_ADMIN_PORT, else 8080 when it is free, else any free port."""
    if os.environ.get("MAILROOM_ADMIN_PORT"):
        return int(os.environ["MAILROOM_ADMIN_PORT"])
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 8080))
        except OSError:
            return free_port()
    return 8080


def _start_admin(pipeline: Pipeline, workdir: Path) -> str:
    """Starts `mailroom admin` like the workers, with the demo user; returns its address once it answers."""
    from admin.users import add_user, save_users

    users: dict[str, Any] = {}
    add_user(users, ADMIN_USER, ADMIN_PASSWORD, "acme", "admin")
    add_user(users, ADMIN_USER, None, "globex", "viewer")
    save_users(workdir / "admin-users.yaml", users)
    port = _admin_port()
    pipeline.env_override("MAILROOM_ADMIN_USERS", str(workdir / "admin-users.yaml"))
    pipeline.env_override("MAILROOM_ADMIN_PORT", str(port))
    pipeline.start(["admin"])
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_until("the web admin", answers, 60)
    return url


def _keep_running(url: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _say(f"\nThe demo keeps running. Web admin: {url}/ (user {ADMIN_USER}, password {ADMIN_PASSWORD})")
    _say("Press Ctrl-C to stop everything.")
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    keep = "--keep" in (sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-demo-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not servers:
            _say("starting Kafka (first run fetches its jars with Maven) ...")
            servers = stack.enter_context(KafkaBroker()).bootstrap_servers
        _say("starting Dovecot and the SMTP relay ...")
        dovecot = stack.enter_context(Dovecot())
        for user in (SUPPORT, SALES, ANN, BOB):
            dovecot.add_user(user, PASSWORD)
        relay = stack.enter_context(SmtpRelay(dovecot.host, dovecot.lmtp_port))
        pipeline = stack.enter_context(
            Pipeline(_config(dovecot.imap_port, relay.port), servers, workdir, namespace=f"demo{os.getpid()}")
        )
        _say(f"starting ingest, matcher, converter, responder and the web admin (logs in {workdir}) ...")
        pipeline.start()
        url = _start_admin(pipeline, workdir)
        _say(f"web admin: {url}/ (user {ADMIN_USER}, password {ADMIN_PASSWORD})")
        reader = TopicReader(pipeline.kafka)
        stack.callback(reader.close)
        for mailbox, raw, what in _samples():
            _say(f"  APPEND to {mailbox}: {what}")
            append_message(dovecot.host, dovecot.imap_port, f"{mailbox}@acme.test", PASSWORD, raw)
        try:
            wait_until(
                "every letter to be decided", lambda: len(reader.records(topics.LETTERS_DECIDED)) >= 5, 120
            )
            wait_until("the replies", lambda: len(reader.events(topics.REPLY_OUTCOMES, ReplySent)) >= 2, 60)
        except TimeoutError as exc:
            _say(f"\nthe demo did not finish: {exc}; worker logs follow")
            for worker in ("ingest", "matcher", "converter", "responder"):
                _say(f"--- {worker} ---\n{pipeline.log(worker)[-2000:]}")
            return 1
        _report(reader, dovecot)
        _say("\nHow reading each mailbox goes (`mailroom mailboxes status`):")
        _say(pipeline.cli("mailboxes", "status", check=False).stdout.rstrip())
        failed = reader.events(topics.REPLY_OUTCOMES, ReplyFailed)
        if failed:
            _say(f"\n{len(failed)} replies failed: {[f.reason for f in failed]}")
        if keep:
            _keep_running(url)
        else:
            _say(f"\nweb admin was at {url}/ (`make demo-keep` keeps the demo running to click through it)")
        _say("\nstopping everything ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
