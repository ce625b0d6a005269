"""The public contract: the events downstream systems subscribe to, exported as JSON Schema files.

    python -m schemas.contract          rewrites schemas/json/ from the models (make contract)

A test compares the files with the models, so a change to the contract is always deliberate: change the
model, regenerate, and review the diff of the JSON files (a breaking change means a new topic version).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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

__all__ = ["JSON_DIR", "PUBLIC_EVENTS", "json_schemas", "write"]

JSON_DIR = Path(__file__).resolve().parent / "json"

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


def json_schemas() -> dict[str, str]:
    """File name -> JSON Schema text of each public event, as the model defines it now."""
    found = {}
    for name, (spec, model) in PUBLIC_EVENTS.items():
        schema = model.model_json_schema(mode="serialization")
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
    for path in write():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    sys.exit(0)
