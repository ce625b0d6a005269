"""Ingest as separate processes: killed again and again, two processes sharing 50 mailboxes and one of
them killed, a broker restarted mid-stream, mailboxes added and removed while it runs. Every letter makes
exactly one event."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from imapclient import IMAPClient

from deploy.local.dovecot import Dovecot
from deploy.local.kafka import KafkaBroker
from deploy.local.pipeline import Pipeline, TopicReader, local_mailbox, wait_until
from schemas import topics
from schemas.events import LetterReceived, MailboxHealth, parse_event
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.fixtures_mail import MailUser
from tests.letters import letter

pytestmark = pytest.mark.e2e

MakeUser = Callable[..., MailUser]
UNUSED_SMTP_PORT = 2525


class Appender(threading.Thread):
    """APPENDs letters to mailboxes at about `rate` a second, retrying across server restarts; keeps the
    Message-ID of each letter it put in."""

    def __init__(self, dovecot: Dovecot, users: list[MailUser], count: int, rate: float) -> None:
        super().__init__(daemon=True)
        self._dovecot, self._users, self._count, self._rate = dovecot, users, count, rate
        self.sent: list[str] = []

    def run(self) -> None:
        clients: dict[str, IMAPClient] = {}
        start = time.monotonic()
        for n in range(self._count):
            user = self._users[n % len(self._users)]
            raw, mid = letter(f"c{n}@customer.test", user.address, f"Question {n}")
            while True:
                try:
                    client = clients.get(user.address)
                    if client is None:
                        client = IMAPClient(self._dovecot.host, port=self._dovecot.imap_port, ssl=False)
                        client.login(user.address, user.password)
                        clients[user.address] = client
                    client.append("INBOX", raw)
                    break
                except Exception:
                    clients.pop(user.address, None)
                    time.sleep(0.2)
            self.sent.append(mid)
            time.sleep(max(0.0, start + (n + 1) / self._rate - time.monotonic()))
        for client in clients.values():
            client.logout()


def _letters(reader: TopicReader) -> list[LetterReceived]:
    return reader.events(topics.LETTERS_RECEIVED, LetterReceived)


def _health(reader: TopicReader) -> dict[str, MailboxHealth]:
    found: dict[str, MailboxHealth] = {}
    for record in reader.records(topics.INGEST_HEALTH):
        if record.value is None:
            found.pop(record.key.decode(), None)
        else:
            found[record.key.decode()] = parse_event(MailboxHealth, record.value)
    return found


def _exactly(reader: TopicReader, sent: list[str], timeout: float = 120) -> list[LetterReceived]:
    """Waits until every letter is there; then each is there once (by event id and by Message-ID)."""
    wanted = set(sent)
    wait_until(
        f"{len(sent)} letters", lambda: wanted <= {e.headers.message_id for e in _letters(reader)}, timeout
    )
    time.sleep(1.0)  # a double would come now
    got = _letters(reader)
    distinct = {e.event_id: e for e in got}
    assert sorted(e.headers.message_id for e in distinct.values()) == sorted(sent)
    return list(distinct.values())


def test_ingest_killed_again_and_again_during_2000_appends_publishes_each_letter_once(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, mail_user_factory: MakeUser
) -> None:
    desk = mail_user_factory("desk")
    pipeline, reader = pipeline_factory(
        {
            "mailboxes": [
                local_mailbox("desk", desk.address, desk.password, dovecot.imap_port, UNUSED_SMTP_PORT)
            ]
        }
    )
    pipeline.start(["ingest"])
    appender = Appender(dovecot, [desk], 2000, rate=80)
    appender.start()
    try:
        for _ in range(4):
            time.sleep(random.uniform(2.0, 4.0))  # it gets going, reads and publishes; then dies mid-way
            pipeline.kill("ingest")
            pipeline.start(["ingest"])
        appender.join(120)
        got = _exactly(reader, appender.sent)
        uids = [e.uid for e in got]
        assert len(uids) == len(set(uids)) == 2000
        assert len(appender.sent) == 2000
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc


def test_two_ingest_processes_share_50_mailboxes_and_one_takes_over_when_the_other_is_killed(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, mail_user_factory: MakeUser
) -> None:
    users = [mail_user_factory(f"box{n}") for n in range(50)]
    boxes = [
        local_mailbox(f"box{n}", u.address, u.password, dovecot.imap_port, UNUSED_SMTP_PORT)
        for n, u in enumerate(users)
    ]
    pipeline, reader = pipeline_factory({"mailboxes": boxes})
    pipeline.start(["ingest"], copies=2)
    try:
        owners = wait_until(
            "50 mailboxes read by two processes",
            lambda: (
                (
                    (h := _health(reader))
                    and len(h) == 50
                    and {x.state for x in h.values()} == {"ok"}
                    and len({x.owner for x in h.values()}) == 2
                    and {x.owner for x in h.values()}
                )
                or None
            ),
            60,
        )
        first = Appender(dovecot, users, 100, rate=100)
        first.start()
        first.join(60)
        time.sleep(0.5)
        second = Appender(dovecot, users, 150, rate=50)  # letters arrive while one process dies
        second.start()
        time.sleep(1.0)
        pipeline.kill("ingest.2")
        second.join(60)
        got = _exactly(reader, first.sent + second.sent, timeout=90)
        assert len({(e.mailbox_id, e.uid) for e in got}) == 250
        survivor = next(o for o in owners if o.endswith(f":{pipeline.pid('ingest')}"))
        wait_until(
            "the survivor reads all 50",
            lambda: {(x.state, x.owner) for x in _health(reader).values()} == {("ok", survivor)} or None,
            30,
        )
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}\n{pipeline.log('ingest.2')[-3000:]}") from exc


@pytest.mark.parametrize("source", ["topic", "file"])
def test_mailboxes_added_and_removed_are_followed_without_a_restart(
    pipeline_factory: PipelineFactory, dovecot: Dovecot, mail_user_factory: MakeUser, source: str
) -> None:
    old, new = mail_user_factory("old"), mail_user_factory("new")
    first = local_mailbox("old", old.address, old.password, dovecot.imap_port, UNUSED_SMTP_PORT)
    pipeline, reader = pipeline_factory({"mailboxes": [first]}, config_source=source)
    pipeline.start(["ingest"])
    try:
        wait_until(
            "old read", lambda: _health(reader).get("old") and _health(reader)["old"].state == "ok", 60
        )
        second = local_mailbox("new", new.address, new.password, dovecot.imap_port, UNUSED_SMTP_PORT)
        if source == "topic":  # one added, the other removed
            pipeline.apply({"mailboxes": [second]})
        else:
            pipeline.write_config({"mailboxes": [second]})
        wait_until(
            "new read", lambda: _health(reader).get("new") and _health(reader)["new"].state == "ok", 30
        )
        wait_until("old forgotten", lambda: "old" not in _health(reader) or None, 30)
        raw, mid = letter("anna@customer.test", new.address, "To the new mailbox")
        Appender(dovecot, [old], 1, rate=10).run()
        with IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False) as imap:
            imap.login(new.address, new.password)
            imap.append("INBOX", raw)
        wait_until("the new mailbox's letter", lambda: _letters(reader) or None, 30)
        time.sleep(1.0)
        assert [(e.mailbox_id, e.headers.message_id) for e in _letters(reader)] == [("new", mid)]
        assert pipeline.running() == {"ingest": True}
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc


def test_ingest_recovers_by_itself_when_the_broker_restarts_mid_stream(
    dovecot: Dovecot, mail_user_factory: MakeUser
) -> None:
    desk = mail_user_factory("desk")
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-e2e-broker-"))
    broker = KafkaBroker()
    broker.start()
    pipeline = Pipeline(
        {
            "mailboxes": [
                local_mailbox("desk", desk.address, desk.password, dovecot.imap_port, UNUSED_SMTP_PORT)
            ]
        },
        broker.bootstrap_servers,
        workdir,
        namespace=f"b{secrets.token_hex(4)}",
        env={"MAILROOM_KAFKA_SESSION_TIMEOUT_SECONDS": "6"},
    )
    reader: TopicReader | None = None
    try:
        pipeline.start(["ingest"])
        reader = TopicReader(pipeline.kafka)
        appender = Appender(dovecot, [desk], 400, rate=40)
        appender.start()
        wait_until("the first letters", lambda: len(_letters(reader)) >= 50 or None, 60)
        reader.close()
        reader = None
        broker.stop(remove=False)
        time.sleep(2.0)
        broker.start()
        appender.join(60)
        reader = TopicReader(pipeline.kafka)
        _exactly(reader, appender.sent, timeout=120)
        assert pipeline.running() == {"ingest": True}
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n{dump_logs(pipeline)}") from exc
    finally:
        pipeline.stop(sig=signal.SIGTERM)
        if reader is not None:
            reader.close()
        broker.stop()
        if not os.environ.get("MAILROOM_E2E_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
