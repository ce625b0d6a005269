"""Integration: ingest, run in process, reads real Dovecot folders and publishes to a real Kafka broker."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from imapclient import IMAPClient
from kafka.admin import KafkaAdminClient

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, fetch_messages
from deploy.local.pipeline import TopicReader, local_mailbox
from ingest.app import Ingest
from ingest.kafka import Publisher, read_checkpoints
from mailroom.admin import create_topics
from runtime.loading import parse_config
from runtime.settings import KafkaSettings
from schemas import topics
from schemas.events import DeadLetter, IngestCheckpoint, LetterReceived, parse_event
from tests.fixtures_mail import MailUser
from tests.letters import letter

pytestmark = pytest.mark.integration

MakeUser = Callable[..., MailUser]
UNUSED_SMTP_PORT = 2525  # ingest never sends; the mailbox model just needs an SMTP server named


class Harness:
    """One test's topic namespace, a reader of its topics, and the Ingest instances built on it."""

    def __init__(self, kafka_servers: str, dovecot: Dovecot) -> None:
        self.kafka = KafkaSettings(
            bootstrap_servers=kafka_servers, partitions=2, namespace=f"it{secrets.token_hex(4)}"
        )
        create_topics(self.kafka)
        self.dovecot = dovecot
        self.reader = TopicReader(self.kafka)
        self._made: list[Ingest] = []

    def mailbox(
        self, box_id: str, user: MailUser, password: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        extra.setdefault("read_from", "2000-01-01T00:00:00Z")  # these tests put letters in first
        return local_mailbox(
            box_id, user.address, password or user.password, self.dovecot.imap_port, UNUSED_SMTP_PORT, **extra
        )

    def ingest(
        self, *mailboxes: dict[str, Any], checkpoints: dict[tuple[str, str], IngestCheckpoint] | None = None
    ) -> Ingest:
        config = parse_config(yaml.safe_dump({"mailboxes": list(mailboxes)}))
        made = Ingest(config, Publisher(self.kafka), {} if checkpoints is None else checkpoints)
        self._made.append(made)
        return made

    def append(self, user: MailUser, raw: bytes, folder: str = "INBOX") -> None:
        append_message(self.dovecot.host, self.dovecot.imap_port, user.address, user.password, raw, folder)

    def served(self, user: MailUser, folder: str = "INBOX") -> list[bytes]:
        """The folder's letters as IMAP hands them out, in UID order."""
        return fetch_messages(self.dovecot.host, self.dovecot.imap_port, user.address, user.password, folder)

    def letters(self) -> list[tuple[str, LetterReceived]]:
        """(record key, event) of every LetterReceived, in topic order per partition."""
        records = self.reader.records(topics.LETTERS_RECEIVED)
        return [(r.key.decode(), parse_event(LetterReceived, r.value)) for r in records]

    def close(self) -> None:
        for made in self._made:
            made.close()  # closing twice is harmless: the readers and the producer guard against it
        self.reader.close()
        admin = KafkaAdminClient(bootstrap_servers=self.kafka.bootstrap_servers)
        try:
            admin.delete_topics([self.kafka.topic(spec) for spec in topics.ALL_TOPICS])
        finally:
            admin.close()


@pytest.fixture
def harness(kafka_servers: str, dovecot: Dovecot) -> Iterator[Harness]:
    made = Harness(kafka_servers, dovecot)
    yield made
    made.close()


def test_inbox_letters_are_published_once_each_in_uid_order(
    harness: Harness, mail_user_factory: MakeUser
) -> None:
    support, sales = mail_user_factory("support"), mail_user_factory("sales")
    to_support = [
        letter("anna@customer.test", support.address, "Zürich:  quote for 12 pallets"),
        letter("Bob Builder <bob@customer.test>", support.address, "Order 42"),
        letter("carla@customer.test", support.address, "Invoice question"),
    ]
    to_sales = letter("dan@customer.test", sales.address, "Demo please")
    for raw, _ in to_support:
        harness.append(support, raw)
    harness.append(sales, to_sales[0])

    ingest = harness.ingest(harness.mailbox("support", support), harness.mailbox("sales", sales))
    assert ingest.poll_once() == 4

    got = harness.letters()
    assert all(key == event.mailbox_id for key, event in got)
    inbox = [event for key, event in got if key == "support"]
    assert [e.uid for e in inbox] == [1, 2, 3]
    assert [e.raw for e in inbox] == harness.served(support)
    assert [e.size for e in inbox] == [len(e.raw) for e in inbox]
    assert [e.headers.message_id for e in inbox] == [mid for _, mid in to_support]
    assert [e.headers.subject for e in inbox] == [
        "Zürich: quote for 12 pallets",
        "Order 42",
        "Invoice question",
    ]
    senders = [e.headers.from_ for e in inbox]
    assert [(s.name, s.address) for s in senders if s] == [
        ("", "anna@customer.test"),
        ("Bob Builder", "bob@customer.test"),
        ("", "carla@customer.test"),
    ]
    assert {(e.folder, e.organization, e.defects) for e in inbox} == {("INBOX", "acme", ())}
    assert len({e.event_id for e in inbox}) == 3
    (sales_event,) = [event for key, event in got if key == "sales"]
    assert (sales_event.headers.message_id, sales_event.raw) == (to_sales[1], harness.served(sales)[0])


def test_repeated_poll_and_restart_publish_only_new_letters(
    harness: Harness, mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory("support")
    for subject in ("First", "Second"):
        harness.append(user, letter("anna@customer.test", user.address, subject)[0])
    box = harness.mailbox("support", user)

    first = harness.ingest(box)
    assert first.poll_once() == 2
    assert first.poll_once() == 0
    assert [e.uid for _, e in harness.letters()] == [1, 2]
    first.close()

    saved = read_checkpoints(harness.kafka)
    assert list(saved) == [("support", "INBOX")]
    assert saved["support", "INBOX"].last_uid == 2

    later, later_mid = letter("anna@customer.test", user.address, "Third, after the restart")
    harness.append(user, later)
    restarted = harness.ingest(box, checkpoints=saved)
    assert restarted.poll_once() == 1
    assert restarted.poll_once() == 0

    got = [event for _, event in harness.letters()]
    assert [e.uid for e in got] == [1, 2, 3]
    assert (got[-1].headers.message_id, got[-1].raw) == (later_mid, harness.served(user)[2])
    assert read_checkpoints(harness.kafka)["support", "INBOX"].last_uid == 3


def test_reread_without_checkpoints_repeats_the_same_event_ids(
    harness: Harness, mail_user_factory: MakeUser
) -> None:
    user = mail_user_factory("support")
    for subject in ("First", "Second"):
        harness.append(user, letter("anna@customer.test", user.address, subject)[0])
    box = harness.mailbox("support", user)
    assert harness.ingest(box).poll_once() == 2
    first_ids = [e.event_id for _, e in harness.letters()]

    assert harness.ingest(box, checkpoints={}).poll_once() == 2

    got = [event for _, event in harness.letters()]
    assert len(got) == 4
    # A consumer that dedupes by event id sees each letter once.
    assert [e.event_id for e in got] == first_ids * 2
    again = [e.model_dump(exclude={"produced_at"}) for e in got[2:]]
    assert again == [e.model_dump(exclude={"produced_at"}) for e in got[:2]]


def test_every_listed_folder_is_read(harness: Harness, mail_user_factory: MakeUser) -> None:
    user = mail_user_factory("support")
    with IMAPClient(harness.dovecot.host, harness.dovecot.imap_port, ssl=False, timeout=30) as client:
        client.login(user.address, user.password)
        client.create_folder("Orders")
    raw, mid = letter("anna@customer.test", user.address, "Filed in two places")
    harness.append(user, raw)
    harness.append(user, raw, folder="Orders")
    harness.append(user, letter("bob@customer.test", user.address, "Only in the inbox")[0])

    ingest = harness.ingest(harness.mailbox("support", user, folders=["INBOX", "Orders"]))
    assert ingest.poll_once() == 3

    got = [event for _, event in harness.letters()]
    by_place = {(e.folder, e.uid): e for e in got}
    assert sorted(by_place) == [("INBOX", 1), ("INBOX", 2), ("Orders", 1)]
    in_inbox, in_orders = by_place["INBOX", 1], by_place["Orders", 1]
    assert in_inbox.event_id != in_orders.event_id
    assert in_inbox.headers.message_id == in_orders.headers.message_id == mid
    assert in_orders.raw == harness.served(user, "Orders")[0]
    saved = read_checkpoints(harness.kafka)
    assert {place: point.last_uid for place, point in saved.items()} == {
        ("support", "INBOX"): 2,
        ("support", "Orders"): 1,
    }


def test_failing_mailbox_does_not_stop_the_others(
    harness: Harness, mail_user_factory: MakeUser, caplog: pytest.LogCaptureFixture
) -> None:
    good, other = mail_user_factory("support"), mail_user_factory("sales")
    harness.append(good, letter("anna@customer.test", good.address, "For support")[0])
    harness.append(other, letter("bob@customer.test", other.address, "For sales")[0])
    wrong = f"wrong-{secrets.token_hex(6)}"
    # The broken mailbox comes first, so its failure happens before the good one is read.
    ingest = harness.ingest(harness.mailbox("sales", other, password=wrong), harness.mailbox("support", good))

    with caplog.at_level(logging.WARNING, logger="ingest.app"):
        assert ingest.poll_once() == 1

    assert [(key, e.headers.subject) for key, e in harness.letters()] == [("support", "For support")]
    assert list(read_checkpoints(harness.kafka)) == [("support", "INBOX")]
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "ingest.app"]
    assert "mailbox sales folder INBOX" in warning
    assert "login refused" in warning
    assert wrong not in caplog.text

    # The next poll tries the broken mailbox again and still reads new letters of the good one.
    harness.append(good, letter("carla@customer.test", good.address, "Another one")[0])
    assert ingest.poll_once() == 1
    assert [e.uid for key, e in harness.letters() if key == "support"] == [1, 2]


def test_letter_over_the_limit_goes_to_the_dead_letters(
    harness: Harness, mail_user_factory: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ingest.watcher.MAX_LETTER_BYTES", 2000)
    user = mail_user_factory("support")
    small, small_mid = letter("anna@customer.test", user.address, "Short question")
    big = letter("bob@customer.test", user.address, "Price list", "Our prices:\n" + "pallet 12.00\n" * 300)[0]
    harness.append(user, small)
    harness.append(user, big)
    served = harness.served(user)
    assert len(served[0]) <= 2000 < len(served[1])

    ingest = harness.ingest(harness.mailbox("support", user))
    ingest.poll_once()

    assert [(e.uid, e.headers.message_id) for _, e in harness.letters()] == [(1, small_mid)]
    records = harness.reader.records(topics.DEAD_LETTERS)
    assert [r.key for r in records] == [b"support"]
    dead = parse_event(DeadLetter, records[0].value)
    assert (dead.stage, dead.error_type, dead.mailbox_id) == ("ingest", "LetterTooLarge", "support")
    assert dead.source_topic == "imap:support/INBOX"
    assert f"letter of {len(served[1])} bytes is over the 2000-byte limit" in dead.reason
    assert "UID 2" in dead.reason
    assert dead.original_kind == "letter"
    assert dead.original == served[1][: 1024 * 1024]  # the head: here the whole letter, as it is under 1 MiB

    # The checkpoint covers the big letter: it is reported once, not on every poll, and stays in the mailbox.
    assert read_checkpoints(harness.kafka)["support", "INBOX"].last_uid == 2
    assert ingest.poll_once() == 0
    assert len(harness.reader.records(topics.DEAD_LETTERS)) == 1
    assert harness.served(user) == served
