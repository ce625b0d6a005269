"""Configuration models: which condition values each operator takes, rule order, references, secrets."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from schemas.config import (
    Condition,
    EnvSecret,
    ImapSettings,
    LeadProcessing,
    MailroomConfig,
    NoProcessing,
    ReplyPolicy,
    ReplyTemplate,
    reveal,
)
from schemas.errors import ConfigError
from tests.unit.builders import TEMPLATE, condition, config, mailbox, rule


@pytest.mark.parametrize(
    ("operator", "value", "values"),
    [
        ("contains", "urgent", ("urgent",)),
        ("does_not_contain", "spam", ("spam",)),
        ("is_equal_to", "Hello", ("Hello",)),
        ("starts_with", "Re:", ("Re:",)),
        ("ends_with", "?", ("?",)),
        ("is_any_of", ["a@x.example", "b@x.example"], ("a@x.example", "b@x.example")),
        ("is_any_of", "a@x.example, b@x.example", ("a@x.example", "b@x.example")),
        ("is_any_of", " a ,, b , ", ("a", "b")),
        ("is_not_any_of", ["  a ", "b"], ("a", "b")),
        ("is_not_any_of", "one", ("one",)),
        ("is_empty", None, ()),
        ("is_empty", "", ()),
        ("is_not_empty", None, ()),
        ("is_not_empty", [], ()),
    ],
)
def test_condition_accepts_the_value_its_operator_takes(
    operator: str, value: Any, values: tuple[str, ...]
) -> None:
    made = Condition(field="subject", operator=operator, value=value)

    assert made.operator == operator
    if operator in ("is_any_of", "is_not_any_of"):
        assert made.values() == values


@pytest.mark.parametrize(
    ("operator", "value", "message"),
    [
        ("contains", None, "operator contains needs a non-empty text value"),
        ("contains", "", "operator contains needs a non-empty text value"),
        ("does_not_contain", ["a", "b"], "operator does_not_contain needs a non-empty text value"),
        ("is_equal_to", None, "operator is_equal_to needs a non-empty text value"),
        ("starts_with", "", "operator starts_with needs a non-empty text value"),
        ("ends_with", None, "operator ends_with needs a non-empty text value"),
        ("is_any_of", None, "operator is_any_of needs a list of values"),
        ("is_any_of", [], "operator is_any_of needs a list of values"),
        ("is_any_of", " , ,", "operator is_any_of needs a list of values"),
        ("is_not_any_of", ["", "  "], "operator is_not_any_of needs a list of values"),
        ("is_empty", "x", "operator is_empty takes no value, got 'x'"),
        ("is_not_empty", ["x"], "operator is_not_empty takes no value"),
    ],
)
def test_condition_rejects_a_value_its_operator_does_not_take(
    operator: str, value: Any, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition(field="subject", operator=operator, value=value)


@pytest.mark.parametrize(
    ("data", "bad"),
    [
        ({"field": "priority", "operator": "contains", "value": "x"}, "field"),
        ({"field": "subject", "operator": "resembles", "value": "x"}, "operator"),
        ({"field": "subject", "operator": "contains", "value": "x", "negate": True}, "negate"),
    ],
)
def test_condition_rejects_unknown_fields_operators_and_keys(data: dict[str, Any], bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Condition.model_validate(data)

    assert [err["loc"][-1] for err in caught.value.errors()] == [bad]


def test_case_sensitive_is_off_unless_asked() -> None:
    assert condition("subject", "contains", "x").case_sensitive is False
    assert condition("subject", "contains", "x", case_sensitive=True).case_sensitive is True


def test_active_rules_are_ordered_by_position_then_as_written_and_skip_inactive_ones() -> None:
    box = mailbox(
        rule("c", position=2),
        rule("a", position=1),
        rule("off", position=0, active=False),
        rule("b", position=1),
        rule("first", position=-5),
    )

    assert [r.id for r in box.active_rules()] == ["first", "a", "b", "c"]


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"id": "sup port"}, "id"),
        ({"id": ""}, "id"),
        ({"email": "not-an-address"}, "email"),
        ({"email": "two words@acme.example"}, "email"),
        ({"reply_policy": "random"}, "reply_policy"),
        ({"processing": {"type": "ticket"}}, "processing"),
    ],
)
def test_mailbox_rejects_bad_values(fields: dict[str, Any], bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        mailbox(**fields)

    assert caught.value.errors()[0]["loc"][0] == bad


def test_mailbox_defaults() -> None:
    box = mailbox()

    assert box.folders == ("INBOX",)
    assert box.processing == NoProcessing()
    assert box.reply_policy is ReplyPolicy.FIRST_MATCH
    assert box.imap.port == 993
    assert box.smtp.port == 587


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: config(mailbox(), mailbox()),
            "mailbox id 'support' is used twice",
        ),
        (
            lambda: config(mailbox(rule("ack"), rule("ack"))),
            "mailbox 'support': rule id 'ack' is used twice",
        ),
        (
            lambda: config(mailbox(rule("ack", template="missing"))),
            "mailbox 'support', rule 'ack': unknown template 'missing'",
        ),
    ],
)
def test_configuration_references_must_resolve(make: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make()


def test_the_same_rule_id_in_two_mailboxes_is_fine() -> None:
    made = config(mailbox(rule("ack")), mailbox(rule("ack"), mailbox_id="sales"))

    assert [b.id for b in made.mailboxes] == ["support", "sales"]


def test_template_of_gives_the_rules_own_template_or_the_named_one() -> None:
    named = ReplyTemplate(subject="Thanks", body="We got it", type="html")
    made = config(mailbox(rule("own"), rule("named", template="thanks")), templates={"thanks": named})
    own, by_name = made.mailboxes[0].rules

    assert made.template_of(own) == TEMPLATE
    assert made.template_of(by_name) == named


def test_mailbox_lookup_and_addresses() -> None:
    made = config(mailbox(), mailbox(mailbox_id="sales", email="Sales@ACME.example"))

    assert made.mailbox("sales") is made.mailboxes[1]
    assert made.mailbox("nope") is None
    assert made.mailbox_addresses() == frozenset({"support@acme.example", "sales@acme.example"})


def test_reveal_a_literal_password() -> None:
    assert reveal(SecretStr("pw")) == "pw"


def test_reveal_a_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILROOM_TEST_PW", "from-env")

    assert reveal(EnvSecret(env="MAILROOM_TEST_PW")) == "from-env"


def test_reveal_names_a_missing_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILROOM_TEST_PW", raising=False)

    with pytest.raises(ConfigError, match="environment variable MAILROOM_TEST_PW"):
        reveal(EnvSecret(env="MAILROOM_TEST_PW"))


def test_passwords_do_not_show_in_repr_str_or_json() -> None:
    box = mailbox(imap=ImapSettings(host="h", username="u", password="hunter2-secret"))
    made = config(box)

    for shown in (repr(made), str(made), made.model_dump_json(), repr(box.imap)):
        assert "hunter2-secret" not in shown


@pytest.mark.parametrize(
    ("processing", "expected_type"),
    [({"type": "none"}, "none"), ({"type": "lead"}, "lead"), ({"type": "case", "tags": ["vip"]}, "case")],
)
def test_processing_is_chosen_by_type(processing: dict[str, Any], expected_type: str) -> None:
    assert mailbox(processing=processing).processing.type == expected_type


def test_lead_and_case_processing_ignore_automated_mail_by_default() -> None:
    assert LeadProcessing(type="lead").ignore_automated is True
    assert mailbox(processing={"type": "case"}).processing.ignore_automated is True  # type: ignore[union-attr]


def test_models_are_frozen() -> None:
    box = mailbox()

    with pytest.raises(ValidationError):
        box.id = "other"  # type: ignore[misc]
    assert box.id == "support"


def _org_box(box_id: str, organization: str, email: str, label: str, **extra: object) -> dict[str, object]:
    return {
        "id": box_id,
        "organization": organization,
        "label": label,
        "email": email,
        "imap": {"host": "imap.x.example", "username": box_id, "password": "pw"},
        "smtp": {"host": "smtp.x.example"},
        **extra,
    }


def test_an_address_belongs_to_one_mailbox_in_the_whole_system() -> None:
    with pytest.raises(ValidationError, match=r"address 'Desk@X\.example' is the address of mailbox 'a'"):
        MailroomConfig.model_validate(
            {
                "mailboxes": [
                    _org_box("a", "acme", "desk@x.example", "Desk"),
                    _org_box("b", "globex", "Desk@X.example", "Desk"),
                ]
            }
        )


def test_a_label_is_unique_within_its_organization_only() -> None:
    two_orgs = MailroomConfig.model_validate(
        {
            "mailboxes": [
                _org_box("a", "acme", "a@x.example", "Support"),
                _org_box("b", "globex", "b@x.example", "Support"),
            ]
        }
    )
    assert two_orgs.mailbox_addresses("acme") == frozenset({"a@x.example"})
    assert two_orgs.mailbox_addresses() == frozenset({"a@x.example", "b@x.example"})
    with pytest.raises(ValidationError, match="label 'support' is the label of mailbox 'a'"):
        MailroomConfig.model_validate(
            {
                "mailboxes": [
                    _org_box("a", "acme", "a@x.example", "Support"),
                    _org_box("b", "acme", "b@x.example", "support"),
                ]
            }
        )


def test_a_named_template_of_one_organization_is_not_for_another() -> None:
    rule = {"id": "ack", "name": "Ack", "template": "thanks"}
    templates = {"thanks": {"subject": "s", "body": "b", "organization": "acme"}}
    ok = MailroomConfig.model_validate(
        {"templates": templates, "mailboxes": [_org_box("a", "acme", "a@x.example", "A", rules=[rule])]}
    )
    assert ok.template_of(ok.mailboxes[0].rules[0]).subject == "s"
    with pytest.raises(
        ValidationError, match="template 'thanks' belongs to organization 'acme', not 'globex'"
    ):
        MailroomConfig.model_validate(
            {"templates": templates, "mailboxes": [_org_box("b", "globex", "b@x.example", "B", rules=[rule])]}
        )
