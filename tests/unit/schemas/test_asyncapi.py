"""The checked-in AsyncAPI document is what the models say, and it describes every topic."""

from __future__ import annotations

import json

from schemas import topics
from schemas.asyncapi import ASYNCAPI_FILE, document, text
from schemas.contract import PUBLIC_EVENTS


def test_the_checked_in_document_matches_the_models() -> None:
    assert ASYNCAPI_FILE.read_text() == text(), "run `make contract` and review the diff"


def test_every_topic_but_the_internal_ledgers_is_a_channel_with_resolvable_messages() -> None:
    made = document()
    assert made["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in made["channels"].values()}
    assert addresses == {spec.name for spec in topics.ALL_TOPICS} - {
        spec.name for spec in topics.LEDGERS.values()
    }
    messages = made["components"]["messages"]
    for channel_id, channel in made["channels"].items():
        for name, ref in channel["messages"].items():
            assert ref == {"$ref": f"#/components/messages/{name}"}
            assert messages[name]["bindings"]["kafka"]["key"]["type"] == "string"
        (operation,) = [
            o for o in made["operations"].values() if o["channel"]["$ref"] == f"#/channels/{channel_id}"
        ]
        assert operation["action"] == "send"


def test_public_events_are_marked_and_no_schema_forbids_a_new_field() -> None:
    messages = document()["components"]["messages"]
    assert {name for name, m in messages.items() if m["x-public"]} == set(PUBLIC_EVENTS)
    assert "LetterDecided" in messages and "MailboxVersion" in messages
    assert '"additionalProperties": false' not in json.dumps(messages)
