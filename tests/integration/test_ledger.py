"""Integration: a stream worker's ledger read back from a real Kafka broker (runtime/ledger.py), and the
converter, run in process, after a batch cut short by a crash."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import pytest
from kafka import KafkaProducer

from converter.app import create_worker
from deploy.local.pipeline import TopicReader
from mailroom.admin import create_topics
from runtime.ledger import STAGE_HEADER, Fact, Ledger, checkpoint_record, fact_record, field_of
from runtime.settings import KafkaSettings, WorkerSettings
from schemas import topics
from schemas.config import LeadProcessing
from schemas.events import Address, LeadCreated, LetterThreaded, parse_event
from schemas.ids import lead_id
from tests.unit.builders import NOW, config, mailbox

pytestmark = pytest.mark.integration

LEADS = topics.LEADS


def _kafka(servers: str) -> KafkaSettings:
    kafka = KafkaSettings(bootstrap_servers=servers, partitions=2, namespace=f"lg{secrets.token_hex(4)}")
    create_topics(kafka)
    return kafka


def _write(kafka: KafkaSettings, records: list[tuple[topics.TopicSpec, int, bytes]]) -> None:
    """Writes each (topic, partition, value) in order, as a worker of another stage would."""
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for spec, partition, value in records:
        producer.send(kafka.topic(spec), value=value, partition=partition).get(timeout=30)
    producer.close()


def _lead(thread: str) -> LeadCreated:
    rid = lead_id("support", thread)
    return LeadCreated(
        event_id=rid,
        occurred_at=NOW,
        lead_id=rid,
        organization="acme",
        mailbox_id="support",
        mailbox_email="support@acme.example",
        name="Hello",
        first_name="Ann",
        last_name="Lee",
        email="ann@customer.example",
        notes="x" * 20_000,  # a letter's body: what the ledger must not need to read again
        letter_id=f"letter-{thread}",
        message_id=thread,
        thread_id=thread,
    )


def _fact(batch: str, fact: Fact) -> bytes:
    return fact_record(batch, json.dumps(fact).encode())


class Records:
    """The converter's state, as its ledger folds it."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}

    def fold_fact(self, fact: Fact) -> None:
        self.records[str(fact["id"])] = str(fact["message_id"])

    def fold_output(self, spec: topics.TopicSpec, data: bytes) -> Fact:
        fact: Fact = {
            "t": "record",
            "id": field_of(data, "event_id"),
            "message_id": field_of(data, "message_id"),
        }
        self.fold_fact(fact)
        return fact

    def ledger(self, kafka: KafkaSettings) -> Ledger:
        return Ledger(kafka, "converter", [LEADS], self.fold_fact, self.fold_output, self.records.clear)


def test_facts_a_checkpoint_closed_are_kept_those_of_a_cut_batch_dropped_and_the_tail_read(
    kafka_servers: str,
) -> None:
    kafka = _kafka(kafka_servers)
    one, two, three = _lead("t1@x"), _lead("t2@x"), _lead("t3@x")
    leads = kafka.topic(LEADS)
    _write(
        kafka,
        [
            (LEADS, 0, one.to_bytes()),
            (topics.LEDGERS["converter"], 0, _fact("a", {"id": one.event_id, "message_id": "t1@x"})),
            (topics.LEDGERS["converter"], 0, checkpoint_record("a", {leads: 1})),
            # A batch cut short: its lead two is on the broker, its fact (and lead three's) without a
            # checkpoint; lead three never made it.
            (LEADS, 0, two.to_bytes()),
            (topics.LEDGERS["converter"], 0, _fact("b", {"id": two.event_id, "message_id": "t2@x"})),
            (topics.LEDGERS["converter"], 0, _fact("b", {"id": three.event_id, "message_id": "t3@x"})),
        ],
    )
    state = Records()
    ledger = state.ledger(kafka)
    ledger.assign([0, 1])
    try:
        heal = ledger.rebuild()

        assert state.records == {one.event_id: "t1@x", two.event_id: "t2@x"}
        assert heal[0].facts == [{"t": "record", "id": two.event_id, "message_id": "t2@x"}]
        assert heal[0].positions == {leads: 2}
        assert ledger.positions == {(leads, 0): 2, (leads, 1): 0}

        # What the stream loop writes after a rebuild: the tail's facts, closed by a checkpoint.
        _write(
            kafka,
            [(topics.LEDGERS["converter"], 0, _fact("c", f)) for f in heal[0].facts]
            + [(topics.LEDGERS["converter"], 0, checkpoint_record("c", heal[0].positions))],
        )
        again = ledger.rebuild()
    finally:
        ledger.close()

    assert again == {}  # nothing left to learn from the leads topic
    assert state.records == {one.event_id: "t1@x", two.event_id: "t2@x"}


def test_a_rebuild_reads_only_the_owned_partitions(kafka_servers: str) -> None:
    kafka = _kafka(kafka_servers)
    one, two = _lead("p0@x"), _lead("p1@x")
    _write(kafka, [(LEADS, 0, one.to_bytes()), (LEADS, 1, two.to_bytes())])
    state = Records()
    ledger = state.ledger(kafka)
    try:
        ledger.assign([1])
        ledger.rebuild()
        owned_one = dict(state.records)
        ledger.assign([0, 1])
        ledger.rebuild()
    finally:
        ledger.close()

    assert owned_one == {two.event_id: "p1@x"}
    assert set(state.records) == {one.event_id, two.event_id}


def _threaded(thread: str, partition_key: str = "support") -> LetterThreaded:
    return LetterThreaded(
        event_id=f"threaded-{thread}",
        occurred_at=NOW,
        mailbox_id=partition_key,
        organization="acme",
        letter_id=f"letter-{thread}",
        message_id=thread,
        thread_id=thread,
        starts_thread=True,
        sender=Address(name="Ann Lee", address="ann@customer.example"),
        subject="Hello",
        text_body="x" * 20_000,
    )


def test_the_converter_after_a_cut_batch_makes_no_second_lead_of_the_tail(
    kafka_servers: str, tmp_path: Path
) -> None:
    kafka = _kafka(kafka_servers)
    cut, fresh = _threaded("cut@x"), _threaded("fresh@x")
    # The input partition of mailbox "support" (the key), found as the producer's partitioner finds it.
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    partition = producer.send(kafka.topic(topics.LETTERS_THREADED), key=b"support", value=cut.to_bytes()).get(
        30
    )
    producer.send(kafka.topic(topics.LETTERS_THREADED), key=b"support", value=fresh.to_bytes()).get(30)
    producer.close()
    # The converter had made the lead of `cut` and was killed before its fact and checkpoint.
    _write(kafka, [(LEADS, partition.partition, _lead("cut@x").to_bytes())])
    settings = WorkerSettings(kafka=kafka, data_dir=tmp_path)
    worker = create_worker(settings, config(mailbox(processing=LeadProcessing(type="lead"))))
    reader = TopicReader(kafka)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        while reader.count(LEADS) < 2 or reader.lag("converter", topics.LETTERS_THREADED) > 0:
            assert not task.done(), task
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, 60)

    try:
        asyncio.run(asyncio.wait_for(run(), 120))
        leads = [parse_event(LeadCreated, r.value) for r in reader.records(LEADS)]
        ledger_values = [r.value for r in reader.records(topics.LEDGERS["converter"])]
    finally:
        reader.close()
    assert sorted(lead.thread_id for lead in leads) == ["cut@x", "fresh@x"]
    facts = [json.loads(v)["fact"]["id"] for v in ledger_values if b'"fact"' in v]
    assert sorted(facts) == sorted(lead.event_id for lead in leads)  # the tail's lead became a fact too
    assert max(map(len, ledger_values)) < 1_000  # small records: no letter bodies in the ledger


def test_records_others_write_are_read_once_and_this_workers_own_skipped(kafka_servers: str) -> None:
    kafka = _kafka(kafka_servers)
    requests, ledger_spec = kafka.topic(topics.REPLIES_REQUESTED), topics.LEDGERS["matcher"]
    seen: list[str] = []

    def fold_output(spec: topics.TopicSpec, data: bytes) -> Fact:
        seen.append(data.decode())
        return {"t": "other", "id": data.decode()}

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    own = [(STAGE_HEADER, b"matcher")]

    def write(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> None:
        producer.send(requests, value=value, partition=0, headers=headers or []).get(timeout=30)

    write(b"employee-1")  # a CRM's reply request
    write(b"auto-1", own)  # the matcher's own, covered by its facts
    producer.send(kafka.topic(ledger_spec), value=checkpoint_record("a", {requests: 2}), partition=0).get(30)
    ledger = Ledger(
        kafka,
        "matcher",
        [topics.REPLIES_REQUESTED],
        lambda f: None,
        fold_output,
        seen.clear,
        foreign=[topics.REPLIES_REQUESTED],
    )
    ledger.assign([0])
    try:
        first = ledger.rebuild()
        after_first = list(seen)
        for fact in first[0].facts:
            producer.send(kafka.topic(ledger_spec), value=_fact("b", fact), partition=0).get(30)
        producer.send(
            kafka.topic(ledger_spec), value=checkpoint_record("b", first[0].positions), partition=0
        ).get(30)
        write(b"employee-2")
        write(b"auto-2", own)
        producer.send(
            kafka.topic(ledger_spec),
            value=checkpoint_record("c", {requests: 4, f"{requests}#seen": 2}),
            partition=0,
        ).get(30)
        second = ledger.rebuild()
    finally:
        ledger.close()
        producer.close()

    assert after_first == ["employee-1"]
    assert first[0].positions == {requests: 2, f"{requests}#seen": 2}
    assert seen == ["employee-2"]  # employee-1 is a fact now; neither auto record was read as a record
    assert second[0].facts == [{"t": "other", "id": "employee-2"}]
