"""A breaking change to the public contract fails here: today's schemas against every released version."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.contract import RELEASED_DIR, breaking_changes, json_schemas


def test_released_versions_are_kept() -> None:
    assert sorted(p.name for p in RELEASED_DIR.iterdir()) == ["1"]


@pytest.mark.parametrize(
    "path", sorted(RELEASED_DIR.glob("*/*.schema.json")), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_todays_public_schemas_keep_every_released_field_and_type(path: Any) -> None:
    today = json_schemas()
    assert path.name in today, f"{path.name} was released and is gone"
    assert breaking_changes(json.loads(path.read_text()), json.loads(today[path.name])) == []


BASE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "count": {"type": "integer"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "who": {"$ref": "#/$defs/Who"},
    },
    "required": ["id", "count", "who"],
    "$defs": {"Who": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
}


def _changed(**changes: Any) -> dict[str, Any]:
    made = json.loads(json.dumps(BASE))
    for path, value in changes.items():
        where = made
        *parents, last = path.split("__")
        for part in parents:
            where = where[part]
        if value is None:
            del where[last]
        else:
            where[last] = value
    return made


def test_an_added_optional_field_or_a_widened_type_is_compatible() -> None:
    assert breaking_changes(BASE, _changed(properties__extra={"type": "string"})) == []
    widened = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert breaking_changes(BASE, _changed(properties__count=widened)) == []


def test_removed_renamed_newly_required_and_narrowed_fields_break() -> None:
    assert breaking_changes(BASE, _changed(properties__note=None)) == ["note: removed"]
    renamed = _changed(properties__identifier={"type": "string"}, properties__id=None)
    assert breaking_changes(BASE, renamed) == ["id: removed"]
    assert breaking_changes(BASE, _changed(required=["id", "count", "who", "note"])) == [
        "note: newly required"
    ]
    assert breaking_changes(BASE, _changed(properties__note={"type": "string"})) == [
        "note: type narrowed from ['null', 'string'] to ['string']"
    ]
    nested = _changed(**{"$defs__Who__properties__name": None})
    assert breaking_changes(BASE, nested) == ["who.name: removed"]
