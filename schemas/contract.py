"""The public contract: the events downstream systems subscribe to, exported as JSON Schema files.

    python -m schemas.contract          rewrites schemas/json/ from the models (make contract)

A test compares the files with the models, so a change to the contract is always deliberate: change the
model, regenerate, and review the diff of the JSON files (a breaking change means a new topic version).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas import topics
from schemas.events import (
    CaseCreated,
    Event,
    LeadCreated,
    LetterLinked,
    LetterShared,
    ReplyDeferred,
    ReplyFailed,
    ReplyFiled,
    ReplyFilingFailed,
    ReplyRequested,
    ReplySent,
)

__all__ = [
    "JSON_DIR",
    "PUBLIC_EVENTS",
    "RELEASED_DIR",
    "breaking_changes",
    "json_schemas",
    "without_extra_rule",
    "write",
]

JSON_DIR = Path(__file__).resolve().parent / "json"
RELEASED_DIR = Path(__file__).resolve().parent / "released"
"""The JSON Schema files of each released version (`released/<version>/`): today's must stay compatible."""

PUBLIC_EVENTS: dict[str, tuple[topics.TopicSpec, type[Event]]] = {
    model.__name__: (spec, model)
    for spec, model in (
        (topics.LEADS, LeadCreated),
        (topics.CASES, CaseCreated),
        (topics.LETTER_LINKS, LetterLinked),
        (topics.LETTERS_SHARED, LetterShared),
        (topics.REPLY_OUTCOMES, ReplySent),
        (topics.REPLY_OUTCOMES, ReplyDeferred),
        (topics.REPLY_OUTCOMES, ReplyFailed),
        (topics.REPLY_OUTCOMES, ReplyFiled),
        (topics.REPLY_OUTCOMES, ReplyFilingFailed),
        # Downstream systems publish employee replies here (the matcher publishes auto-replies).
        (topics.REPLIES_REQUESTED, ReplyRequested),
    )
}
"""Event name -> (its topic, its model)."""


def without_extra_rule(schema: Any) -> Any:
    """The schema without `additionalProperties: false`: a consumer ignores fields it does not know, so
    that adding an optional field is a compatible change (mailroom's own models still refuse them)."""
    if isinstance(schema, dict):
        return {
            k: without_extra_rule(v)
            for k, v in schema.items()
            if not (k == "additionalProperties" and v is False)
        }
    if isinstance(schema, list):
        return [without_extra_rule(v) for v in schema]
    return schema


def _types(schema: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """The JSON types a property's schema allows (references followed)."""
    if "$ref" in schema:
        return _types(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    if "anyOf" in schema or "oneOf" in schema:
        return set().union(*(_types(s, defs) for s in schema.get("anyOf", schema.get("oneOf", []))))
    if "const" in schema:
        return {f"const:{schema['const']}"}
    if "enum" in schema:
        return {f"const:{v}" for v in schema["enum"]}
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(kind)
    return {kind} if kind else {"any"}


def breaking_changes(old: dict[str, Any], new: dict[str, Any], where: str = "") -> list[str]:
    """What in `new` breaks a consumer written for `old`: a field removed (or renamed), a field newly
    required, a type narrowed (a value `old` allowed that `new` refuses), nested objects included. A new
    optional field is compatible."""
    found: list[str] = []
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})

    def compare(a: dict[str, Any], b: dict[str, Any], path: str) -> None:
        if "$ref" in a:
            a = old_defs.get(a["$ref"].rsplit("/", 1)[-1], {})
        if "$ref" in b:
            b = new_defs.get(b["$ref"].rsplit("/", 1)[-1], {})
        a_props, b_props = a.get("properties", {}), b.get("properties", {})
        for name in a_props:
            if name not in b_props:
                found.append(f"{path}{name}: removed")
        for name in set(b.get("required", ())) - set(a.get("required", ())):
            found.append(f"{path}{name}: newly required")
        for name, a_field in a_props.items():
            b_field = b_props.get(name)
            if b_field is None:
                continue
            a_types, b_types = _types(a_field, old_defs), _types(b_field, new_defs)
            if "any" not in b_types and not a_types <= b_types:
                found.append(f"{path}{name}: type narrowed from {sorted(a_types)} to {sorted(b_types)}")
            compare(a_field, b_field, f"{path}{name}.")

    compare(old, new, where)
    return found


def json_schemas() -> dict[str, str]:
    """File name -> JSON Schema text of each public event, as the model defines it now."""
    found = {}
    for name, (spec, model) in PUBLIC_EVENTS.items():
        schema = without_extra_rule(model.model_json_schema(mode="serialization"))
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"mailroom/{spec.name}/{name}.schema.json",
            "x-topic": spec.name,
            "x-key": spec.key,
            **schema,
        }
        found[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return found


def write(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in json_schemas().items():
        path = directory / file_name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    from schemas.asyncapi import write as write_asyncapi

    for path in [*write(), write_asyncapi()]:
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    sys.exit(0)
