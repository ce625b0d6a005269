"""The pipeline's topics as an AsyncAPI 3 document, generated from the models and checked in.

    python -m schemas.asyncapi        rewrites schemas/asyncapi.json (make contract)

Channels are the topics (the name without a namespace prefix), messages the events each carries with
their JSON Schema (draft 2020-12, as the models define it) and their Kafka key. `x-public` marks what
downstream systems may rely on (schemas/CONTRACT.md); the rest is mailroom's own traffic, documented for
operators and auditors. A test compares the file with the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas import topics
from schemas.contract import PUBLIC_EVENTS, without_extra_rule
from schemas.events import (
    CaseCreated,
    ConfigRemoved,
    DeadLetter,
    Event,
    IngestCheckpoint,
    LeadCreated,
    LetterDecided,
    LetterLinked,
    LetterReceived,
    LetterShared,
    LetterThreaded,
    MailboxHealth,
    MailboxVersion,
    ReplyDeferred,
    ReplyFailed,
    ReplyFiled,
    ReplyFilingFailed,
    ReplyRequested,
    ReplySent,
    TemplateVersion,
)

__all__ = ["ASYNCAPI_FILE", "CHANNELS", "document", "write"]

ASYNCAPI_FILE = Path(__file__).resolve().parent / "asyncapi.json"

_OUTCOMES = (ReplySent, ReplyDeferred, ReplyFailed, ReplyFiled, ReplyFilingFailed)

CHANNELS: dict[str, tuple[topics.TopicSpec, tuple[type[Event], ...], str, str]] = {
    "lettersReceived": (topics.LETTERS_RECEIVED, (LetterReceived,), "ingest", "matcher"),
    "lettersThreaded": (topics.LETTERS_THREADED, (LetterThreaded,), "matcher", "converter"),
    "lettersShared": (topics.LETTERS_SHARED, (LetterShared,), "matcher", "notifiers"),
    "lettersDecided": (topics.LETTERS_DECIDED, (LetterDecided,), "matcher", "auditors"),
    "repliesRequested": (topics.REPLIES_REQUESTED, (ReplyRequested,), "matcher, CRMs", "responder"),
    "replyOutcomes": (topics.REPLY_OUTCOMES, _OUTCOMES, "responder", "everyone"),
    "leads": (topics.LEADS, (LeadCreated,), "converter", "CRMs"),
    "cases": (topics.CASES, (CaseCreated,), "converter", "CRMs"),
    "letterLinks": (topics.LETTER_LINKS, (LetterLinked,), "converter", "CRMs"),
    "deadLetters": (topics.DEAD_LETTERS, (DeadLetter,), "every worker", "operators"),
    "ingestCheckpoints": (topics.INGEST_CHECKPOINTS, (IngestCheckpoint,), "ingest", "ingest"),
    "ingestHealth": (topics.INGEST_HEALTH, (MailboxHealth,), "ingest", "operators, the admin"),
    "config": (topics.CONFIG, (MailboxVersion, TemplateVersion), "mailroom config apply", "every worker"),
    "configHistory": (
        topics.CONFIG_HISTORY,
        (MailboxVersion, TemplateVersion, ConfigRemoved),
        "mailroom config apply",
        "auditors",
    ),
}
"""Channel id -> (topic, its events, who writes, who reads). The workers' ledgers are internal state, not
events, and are left out."""


def _summary(model: type[Event]) -> str:
    doc = (model.__doc__ or model.__name__).strip()
    return " ".join(doc.split("\n\n")[0].split())


def document() -> dict[str, Any]:
    public = set(PUBLIC_EVENTS)
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel_id, (spec, models, writers, readers) in CHANNELS.items():
        for model in models:
            schema = without_extra_rule(model.model_json_schema(mode="serialization"))
            messages[model.__name__] = {
                "name": model.__name__,
                "title": model.__name__,
                "summary": _summary(model),
                "contentType": "application/json",
                "payload": {
                    "schemaFormat": "application/schema+json;version=draft-2020-12",
                    "schema": schema,
                },
                "bindings": {
                    "kafka": {"key": {"type": "string", "description": spec.key}, "bindingVersion": "0.5.0"}
                },
                "x-public": model.__name__ in public,
            }
        channels[channel_id] = {
            "address": spec.name,
            "description": f"Written by {writers}; read by {readers}. Key: {spec.key}."
            + (" Compacted: the latest record per key is the state." if spec.compacted else "")
            + (" Kept forever." if spec.kept_forever else ""),
            "messages": {m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m in models},
            "bindings": {"kafka": {"topic": spec.name, "bindingVersion": "0.5.0"}},
        }
        operations[f"send{channel_id[0].upper()}{channel_id[1:]}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"{writers} publish {', '.join(m.__name__ for m in models)}",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m.__name__}"} for m in models],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "mailroom",
            "version": "1",
            "description": "System mailboxes on a Kafka pipeline: the topics, their events and keys. Topic "
            "names get the prefix `<namespace>.` when MAILROOM_KAFKA_NAMESPACE is set. Events marked "
            "x-public are the public contract (schemas/CONTRACT.md): a consumer ignores fields it does not "
            "know, and a new field is always optional.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def text() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def write(path: Path = ASYNCAPI_FILE) -> Path:
    path.write_text(text())
    return path


if __name__ == "__main__":
    print(write())
    sys.exit(0)
