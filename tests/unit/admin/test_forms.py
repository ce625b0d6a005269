"""The forms as configuration: the validation of `config apply`, each error at its field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from admin import forms
from admin.forms import FormError
from runtime.configfeed import ConfigState
from schemas.config import FileSecret
from schemas.events import utcnow
from tests.unit.admin.conftest import mailbox_form, rule_form


def _document(tmp_path: Path, **changes: Any) -> tuple[dict[str, Any], dict[Path, str]]:
    box, files = forms.mailbox_document(mailbox_form(**changes), None, tmp_path, "t1")
    return {"templates": {}, "mailboxes": [box]}, files


def _errors(document: dict[str, Any], rule_index: int | None = None, **kw: Any) -> dict[str, str]:
    with pytest.raises(FormError) as caught:
        forms.prepare(document, ConfigState(), utcnow(), "olga", 0, rule_index, **kw)
    return caught.value.errors


def test_a_typed_password_becomes_a_file_reference_never_a_value(tmp_path: Path) -> None:
    document, files = _document(tmp_path)
    changes = forms.prepare(document, ConfigState(), utcnow(), "olga", 0)
    (change,) = changes
    assert change.kind == "added" and change.event is not None
    box = change.event.mailbox  # type: ignore[union-attr]
    assert isinstance(box.imap.password, FileSecret)
    assert files == {Path(box.imap.password.file): "imap-secret-1"}
    assert b"imap-secret-1" not in change.event.to_bytes()
    assert box.processing.type == "case" and box.processing.owner == "olga"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"imap.port": "ninety"}, "imap.port", "integer"),
        ({"imap.port": "70000"}, "imap.port", "65535"),
        ({"email": "not-an-address"}, "email", "pattern"),
        ({"id": "no spaces"}, "id", "pattern"),
        ({"limits.robot_senders": "(bad"}, "limits.robot_senders", "invalid regular expression"),
        ({"imap.security": "ssl3"}, "imap.security", "'tls'"),
    ],
)
def test_a_mailbox_error_is_at_its_field(
    tmp_path: Path, changes: dict[str, str], field: str, words: str
) -> None:
    document, _ = _document(tmp_path, **changes)
    errors = _errors(document)
    assert field in errors and words in errors[field], errors


def test_an_address_used_by_another_mailbox_is_at_the_email_field(tmp_path: Path) -> None:
    document, _ = _document(tmp_path)
    other, _ = forms.mailbox_document(mailbox_form(id="other", label="Other"), None, tmp_path, "t2")
    document["mailboxes"].insert(0, other)
    with pytest.raises(FormError) as caught:
        forms.prepare(document, ConfigState(), utcnow(), "olga", 1)
    assert "address" in caught.value.errors["email"]


def _with_rule(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    document, _ = _document(tmp_path)
    document["mailboxes"][0]["rules"] = [forms.rule_document(rule_form(**changes), None, "urgent", 1)]
    return document


def test_a_rule_with_two_conditions_and_a_custom_html_template() -> None:
    rule = forms.rule_document(rule_form(), None, "urgent", 1)
    assert rule["conditions"] == [
        {"field": "subject", "operator": "contains", "value": "urgent"},
        {"field": "header:X-Priority", "operator": "is_any_of", "value": "1, 2"},
    ]
    assert rule["template"]["type"] == "html" and rule["active"] is True


def test_a_bad_regex_is_at_its_condition(tmp_path: Path) -> None:
    document = _with_rule(tmp_path, **{"conditions.1.operator": "matches_regex", "conditions.1.value": "(x"})
    errors = _errors(document, 0)
    assert "invalid regular expression" in errors["conditions.1"]


def test_an_operator_that_does_not_fit_the_field_is_at_its_condition(tmp_path: Path) -> None:
    document = _with_rule(tmp_path, **{"conditions.0.operator": "before", "conditions.0.value": "2024-01-01"})
    assert "for field received only" in _errors(document, 0)["conditions.0"]


@pytest.mark.parametrize(("part", "source"), [("subject", "{{ letter.sujbect }}"), ("body", "{% if %}")])
def test_a_broken_template_is_at_its_part(tmp_path: Path, part: str, source: str) -> None:
    document = _with_rule(tmp_path, **{f"template.{part}": source})
    errors = _errors(document, 0)
    assert list(errors) == [f"template.{part}"], errors


def test_an_empty_rule_name_is_required(tmp_path: Path) -> None:
    document = _with_rule(tmp_path, name="")
    assert _errors(document, 0, required={"name": ""}) == {"name": "required"}


def test_field_of_strips_the_mailbox_rule_and_union_parts() -> None:
    assert forms.field_of(("mailboxes", 2, "imap", "port"), 2, None) == "imap.port"
    assert forms.field_of(("mailboxes", 2, "processing", "case", "owner"), 2, None) == "case.owner"
    assert forms.field_of(("mailboxes", 0, "rules", 1, "conditions", 0), 0, 1) == "conditions.0"
    assert forms.field_of(("mailboxes", 0, "rules", 1, "template", "ReplyTemplate", "body"), 0, 1) == (
        "template.body"
    )
    assert forms.field_of(("mailboxes", 1, "imap", "port"), 2, None) == ""


def test_rule_ids_come_from_names_and_stay_unique() -> None:
    assert forms.rule_id_for("Urgent letters!", set()) == "urgent-letters"
    assert forms.rule_id_for("Urgent letters", {"urgent-letters"}) == "urgent-letters-2"
    assert forms.rule_id_for("!!!", set()) == "rule"
