"""Integration: ingest's folder watchers (a thread and a connection per folder, IDLE) against real Dovecot
and Kafka: letters arriving while it runs, where a new mailbox starts, a recreated folder, failing and
hung servers beside healthy ones, a Dovecot restart."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from imapclient import IMAPClient

from deploy.local.dovecot import Dovecot
from deploy.local.pipeline import wait_until
from ingest.app import Ingest
from ingest.kafka import Publisher
from runtime.loading import parse_config
from runtime.settings import IngestSettings
from schemas import topics
from schemas.events import MailboxHealth, parse_event
from tests.fixtures_mail import MailUser
from tests.integration.test_ingest import Harness
from tests.letters import letter

pytestmark = pytest.mark.integration

MakeUser = Callable[..., MailUser]
FAST = IngestSettings(
    imap_timeout_seconds=3,
    backoff_first_seconds=0.2,
    backoff_max_seconds=1,
    failing_after_seconds=2,
    failing_retry_seconds=60,
)


class Running:
    """An Ingest with its watchers on threads, and a thread publishing its health, as `mailroom ingest`
    runs it (without the group: it owns every mailbox)."""

    def __init__(
        self, harness: Harness, boxes: list[dict[str, Any]], settings: IngestSettings = FAST
    ) -> None:
        config = parse_config(yaml.safe_dump({"mailboxes": boxes}))
        self.ingest = Ingest(config, Publisher(harness.kafka), {}, settings, poll_seconds=0.5, owner="test:1")
        self._stop = threading.Event()
        self.ingest.update(owned=None)
        self._health = threading.Thread(target=self._publish_health, daemon=True)
        self._health.start()

    def _publish_health(self) -> None:
        while not self._stop.wait(0.2):
            self.ingest.publish_health()

    def close(self) -> None:
        self._stop.set()
        self._health.join()
        self.ingest.close()


@pytest.fixture
def harness(kafka_servers: str, dovecot: Dovecot) -> Iterator[Harness]:
    made = Harness(kafka_servers, dovecot)
    yield made
    made.close()


@pytest.fixture
def running(harness: Harness) -> Iterator[Callable[..., Running]]:
    made: list[Running] = []

    def start(*boxes: dict[str, Any], settings: IngestSettings = FAST) -> Running:
        made.append(Running(harness, list(boxes), settings))
        return made[-1]

    yield start
    for each in made:
        each.close()


def _imap(dovecot: Dovecot, user: MailUser) -> IMAPClient:
    client = IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False, timeout=30)
    client.login(user.address, user.password)
    return client


def _wait_ok(run: Running, *box_ids: str) -> None:
    wait_until(
        f"{box_ids} watched", lambda: all(run.ingest.board.state_of(b) == "ok" for b in box_ids) or None, 30
    )


def _health(harness: Harness) -> dict[str, MailboxHealth]:
    found = {}
    for record in harness.reader.records(topics.INGEST_HEALTH):
        if record.value is not None:
            found[record.key.decode()] = parse_event(MailboxHealth, record.value)
    return found


def test_letters_appended_while_ingest_runs_each_make_one_event_in_uid_order(
    harness: Harness, running: Callable[..., Running], mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory("support")
    run = running(harness.mailbox("support", user))
    _wait_ok(run, "support")
    sent = []
    with _imap(harness.dovecot, user) as imap:
        for n in range(1000):
            raw, mid = letter(f"c{n}@customer.test", user.address, f"Question {n}")
            imap.append("INBOX", raw)
            sent.append(mid)
    got = wait_until(
        "1,000 letters", lambda: (lambda xs: xs if len(xs) >= 1000 else None)(harness.letters()), 120
    )
    time.sleep(1.0)  # anything more would be a double
    got = harness.letters()
    assert len(got) == 1000
    assert [e.uid for _, e in got] == list(range(1, 1001))
    assert [e.headers.message_id for _, e in got] == sent
    assert len({e.event_id for _, e in got}) == 1000
    assert run.ingest.board.state_of("support") == "ok"
    (inbox,) = _health(harness)["support"].folders
    assert (inbox.folder, inbox.state, inbox.waiting) == ("INBOX", "ok", "idle")


def test_a_new_mailbox_does_not_read_the_letters_it_already_holds(
    harness: Harness, running: Callable[..., Running], mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory("sales")
    with _imap(harness.dovecot, user) as imap:
        for n in range(100):
            imap.append("INBOX", letter(f"old{n}@customer.test", user.address, f"Backlog {n}")[0])
    run = running(harness.mailbox("sales", user, read_from=None))  # the default: from when it is added
    _wait_ok(run, "sales")
    fresh, fresh_mid = letter("new@customer.test", user.address, "After the mailbox was added")
    harness.append(user, fresh)
    wait_until("the new letter", lambda: harness.letters() or None, 30)
    time.sleep(1.0)
    assert [(e.uid, e.headers.message_id) for _, e in harness.letters()] == [(101, fresh_mid)]


def test_a_folder_recreated_with_a_new_uidvalidity_gives_no_doubles(
    harness: Harness, running: Callable[..., Running], mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory("orders")
    with _imap(harness.dovecot, user) as imap:
        imap.create_folder("Orders")
        first_validity = imap.select_folder("Orders")[b"UIDVALIDITY"]
    run = running(harness.mailbox("orders", user, folders=["Orders"]))
    _wait_ok(run, "orders")
    letters = [letter(f"c{n}@customer.test", user.address, f"Order {n}") for n in range(3)]
    for raw, _ in letters:
        harness.append(user, raw, "Orders")
    wait_until("3 letters", lambda: len(harness.letters()) == 3 or None, 30)

    with _imap(harness.dovecot, user) as imap:  # a restore: the folder is made anew and filled again
        imap.delete_folder("Orders")
        time.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock
        imap.create_folder("Orders")
        assert imap.select_folder("Orders")[b"UIDVALIDITY"] != first_validity
        for raw, _ in letters:
            imap.append("Orders", raw)
        new, new_mid = letter("late@customer.test", user.address, "After the restore")
        imap.append("Orders", new)
    wait_until("the new letter", lambda: len(harness.letters()) >= 4 or None, 30)
    time.sleep(1.0)
    got = [e for _, e in harness.letters()]
    assert [e.headers.message_id for e in got] == [mid for _, mid in letters] + [new_mid]
    assert got[-1].uid == 4 and got[-1].uidvalidity != first_validity


def test_a_refused_login_and_a_hung_server_fail_alone_with_reasons(
    harness: Harness, running: Callable[..., Running], mail_user_factory: MakeUser
) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never says a word
    silent.listen(50)
    try:
        good = [mail_user_factory(f"desk{n}") for n in range(20)]
        locked = mail_user_factory("locked")
        boxes = [harness.mailbox(f"desk{n}", user) for n, user in enumerate(good)]
        boxes.append(harness.mailbox("locked", locked, password="not-the-password"))
        hung = harness.mailbox("hung", mail_user_factory("hung"))
        hung["imap"]["port"] = silent.getsockname()[1]
        boxes.append(hung)
        # A long IMAP timeout: while the hung server holds its watcher, the others must go on.
        run = running(*boxes, settings=FAST.model_copy(update={"imap_timeout_seconds": 8}))
        _wait_ok(run, *(f"desk{n}" for n in range(20)))
        for n, user in enumerate(good):
            harness.append(user, letter("anna@customer.test", user.address, f"For desk {n}")[0])
        got = wait_until(
            "20 letters", lambda: (lambda xs: xs if len(xs) >= 20 else None)(harness.letters()), 7
        )
        assert sorted(e.mailbox_id for _, e in got) == sorted(f"desk{n}" for n in range(20))

        health = wait_until(
            "both failing",
            lambda: (
                (
                    (h := _health(harness)).get("locked")
                    and h.get("hung")
                    and h["locked"].state == h["hung"].state == "failing"
                    and h
                )
                or None
            ),
            40,
        )
        assert "login refused" in (health["locked"].error or "")
        assert "imap.password" in (health["locked"].advice or "")
        assert "tried again every" in (health["locked"].advice or "")
        assert "timed out" in (health["hung"].error or "").lower()
        assert "mailroom mailboxes check" in (health["hung"].advice or "")
        assert {health[f"desk{n}"].state for n in range(20)} == {"ok"}
    finally:
        silent.close()


def test_ingest_recovers_by_itself_when_dovecot_restarts_mid_stream(
    harness: Harness, running: Callable[..., Running], kafka_servers: str
) -> None:
    own = Dovecot(keep=True)
    own.start()
    try:
        user = MailUser(f"restart-{secrets.token_hex(4)}@mailroom.test", "pw-restart")
        own.add_user(user.address, user.password)
        box = harness.mailbox("restart", user)
        box["imap"]["port"] = own.imap_port
        run = running(box)
        _wait_ok(run, "restart")

        appended = threading.Event()

        def append_all() -> None:
            n = 0
            while n < 300:
                raw = letter(f"c{n}@customer.test", user.address, f"Question {n}")[0]
                try:
                    with IMAPClient(own.host, port=own.imap_port, ssl=False, timeout=10) as imap:
                        imap.login(user.address, user.password)
                        while n < 300:
                            imap.append("INBOX", raw)
                            n += 1
                            raw = letter(f"c{n}@customer.test", user.address, f"Question {n}")[0]
                except (OSError, Exception):
                    time.sleep(0.2)  # Dovecot is restarting
            appended.set()

        writer = threading.Thread(target=append_all)
        writer.start()
        wait_until("some letters", lambda: len(harness.letters()) >= 50 or None, 30)
        own.stop()  # keep=True: its mail and ports stay for the restart
        own.start()
        writer.join(120)
        assert appended.is_set()
        with IMAPClient(own.host, port=own.imap_port, ssl=False, timeout=10) as imap:
            imap.login(user.address, user.password)
            imap.select_folder("INBOX", readonly=True)
            held = imap.search(["ALL"])
        wait_until("every letter", lambda: len(harness.letters()) >= len(held) or None, 60)
        time.sleep(1.0)
        got = [e for _, e in harness.letters()]
        assert sorted(e.uid for e in got) == sorted(held)
        assert len({e.event_id for e in got}) == len(got)
        wait_until("ok again", lambda: run.ingest.board.state_of("restart") == "ok" or None, 30)
    finally:
        own.keep = False
        own.stop()


def test_a_mailbox_with_idle_turned_off_is_polled(
    harness: Harness, running: Callable[..., Running], mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory("polled")
    box = harness.mailbox("polled", user)
    box["imap"].update(idle=False, poll_seconds=0.3)
    run = running(box)
    _wait_ok(run, "polled")
    raw, mid = letter("anna@customer.test", user.address, "Polled, not idled")
    harness.append(user, raw)
    wait_until("the letter", lambda: harness.letters() or None, 30)
    assert [e.headers.message_id for _, e in harness.letters()] == [mid]
    (inbox,) = wait_until("health", lambda: _health(harness).get("polled"), 10).folders
    assert (inbox.state, inbox.waiting) == ("ok", "poll")
