"""Reply requests: an auto-reply needs its rule and template, an employee's reply its content, author and
recipients; reply ids fit in a Message-ID. Invalid bytes are an EventError naming the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.config import ReplyTemplate
from schemas.errors import EventError
from schemas.events import Address, ReplyContent, ReplyRequested, parse_event
from tests.unit.builders import NOW

TEMPLATE = ReplyTemplate(subject="Re", body="Hi")
CONTENT = ReplyContent(subject="Re: Printer", body="We come tomorrow.")


def _fields(kind: str = "employee", /, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "event_id": "crm-1",
        "occurred_at": NOW,
        "reply_id": "crm-1",
        "mailbox_id": "support",
        "kind": kind,
        "to": (Address(name="Ann", address="ann@customer.example"),),
        "in_reply_to": "m1@customer.example",
        "thread_id": "m1@customer.example",
        "mailbox_email": "support@acme.example",
    }
    if kind == "employee":
        values.update(content=CONTENT, author="olga")
    else:
        values.update(rule_id="ack", rule_name="Ack", template=TEMPLATE)
    values.update(changes)
    return values


@pytest.mark.parametrize("kind", ["auto", "employee"])
def test_a_valid_request_round_trips(kind: str) -> None:
    request = ReplyRequested(**_fields(kind))

    assert parse_event(ReplyRequested, request.to_bytes()) == request
    assert request.kind == kind


def test_kind_defaults_to_auto_as_requests_made_before_employee_replies() -> None:
    fields = _fields("auto")
    del fields["kind"]

    assert ReplyRequested(**fields).kind == "auto"


@pytest.mark.parametrize(
    ("kind", "changes", "message"),
    [
        ("auto", {"template": None}, "an auto reply needs a rule_id and a template"),
        ("auto", {"rule_id": ""}, "an auto reply needs a rule_id and a template"),
        ("auto", {"content": CONTENT}, "it takes no content"),
        ("employee", {"content": None}, "an employee reply needs its content and its author"),
        ("employee", {"author": None}, "an employee reply needs its content and its author"),
        ("employee", {"author": ""}, "an employee reply needs its content and its author"),
        ("employee", {"template": TEMPLATE}, "it takes no template"),
        ("employee", {"to": ()}, "at least one recipient"),
        ("employee", {"reply_id": "has space"}, "String should match pattern"),
        ("employee", {"reply_id": "<crm-1>"}, "String should match pattern"),
        ("employee", {"reply_id": "a..b"}, "String should match pattern"),
        ("employee", {"reply_id": ""}, "at least 1 character"),
        ("employee", {"kind": "manual"}, "Input should be 'auto' or 'employee'"),
    ],
)
def test_an_invalid_request_is_refused(kind: str, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReplyRequested(**_fields(kind, **changes))


def test_invalid_bytes_are_an_event_error_that_names_the_problem() -> None:
    data = ReplyRequested(**_fields()).to_bytes().replace(b'"author":"olga"', b'"author":null')

    with pytest.raises(EventError, match=r"not a valid ReplyRequested: .*content and its author"):
        parse_event(ReplyRequested, data)


def test_a_body_over_the_limit_is_refused() -> None:
    with pytest.raises(ValidationError, match="at most 200000 characters"):
        ReplyContent(subject="s", body="x" * 200_001)


@pytest.mark.parametrize("reply_id", ["crm-1", "note.4711", "a+b=c", "6f1c1f0e-8a43-5c55-9a3e-6d61696c726f"])
def test_reply_ids_that_fit_in_a_message_id_are_taken(reply_id: str) -> None:
    assert ReplyRequested(**_fields(reply_id=reply_id)).reply_id == reply_id


def test_the_documented_employee_reply_is_a_valid_request() -> None:
    contract = (Path(__file__).resolve().parents[3] / "schemas" / "CONTRACT.md").read_text()
    example = contract.split("```json\n", 1)[1].split("```", 1)[0]

    request = parse_event(ReplyRequested, example.encode())

    assert (request.kind, request.reply_id, request.author) == ("employee", "crm-note-4711", "olga")
