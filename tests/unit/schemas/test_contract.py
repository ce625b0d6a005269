"""The public contract's JSON Schema files are exactly what the models say: a change is deliberate."""

from __future__ import annotations

import json

import pytest

from schemas.contract import JSON_DIR, PUBLIC_EVENTS, json_schemas


@pytest.mark.parametrize("file_name", sorted(json_schemas()))
def test_the_json_schema_file_matches_the_model(file_name: str) -> None:
    path = JSON_DIR / file_name
    assert path.exists(), f"{path} is missing: run `make contract`"
    assert path.read_text() == json_schemas()[file_name], (
        f"the model behind {file_name} changed: if that is deliberate, run `make contract` and review "
        "the diff (a breaking change needs a new topic version)"
    )


def test_there_are_no_stale_schema_files() -> None:
    assert sorted(p.name for p in JSON_DIR.glob("*.json")) == sorted(json_schemas())


@pytest.mark.parametrize("name", sorted(PUBLIC_EVENTS))
def test_every_public_event_names_its_type_topic_and_common_fields(name: str) -> None:
    schema = json.loads(json_schemas()[f"{name}.schema.json"])
    common = {"schema_version", "event_id", "event_type", "occurred_at", "produced_at"}
    assert (
        "additionalProperties" not in schema
    )  # consumers ignore fields they do not know: additions are compatible
    assert schema["properties"]["event_type"]["const"] == name
    assert schema["x-topic"].endswith(".v1")
    assert common <= set(schema["properties"])
