"""Loading YAML: a good file gives the models; a bad one a ConfigError naming the path, ids and the value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runtime.loading import FileConfigSource, load_config, parse_config
from schemas.config import ConditionOperator, EnvSecret, LeadProcessing, ReplyPolicy
from schemas.errors import ConfigError

GOOD = """
templates:
  thanks:
    subject: "{{ letter.reply_subject }}"
    body: "Hello {{ letter.from_name }}"
mailboxes:
  - id: support
    organization: acme
    label: Acme Support
    email: support@acme.example
    imap: {host: imap.acme.example, username: support, password: {env: SUPPORT_IMAP_PASSWORD}}
    smtp: {host: smtp.acme.example, security: tls, port: 465}
    processing: {type: lead, owner: sam}
    reply_policy: all_matching
    rules:
      - id: ack
        name: Acknowledge
        position: 2
        conditions:
          - {field: subject, operator: contains, value: urgent}
          - {field: from, operator: is_not_any_of, value: [boss@acme.example, cto@acme.example]}
          - {field: to, operator: is_any_of, value: "a@acme.example, b@acme.example"}
        template: thanks
      - id: inline
        name: Inline
        position: 1
        template: {subject: Hi, body: Hello, type: html}
"""


def _broken(condition: str = "{field: subject, operator: contains, value: x}", **swap: str) -> str:
    """A configuration with one mailbox `support`, rule `ack` with `condition`, and rule `other`."""
    text = f"""
templates:
  thanks: {{subject: Re, body: Hi}}
mailboxes:
  - id: support
    organization: acme
    label: Acme Support
    email: support@acme.example
    imap: {{host: imap.x, username: u, password: IMAP_PASSWORD}}
    smtp: {{host: smtp.x}}
    rules:
      - id: ack
        name: Ack
        conditions: [{condition}]
        template: TEMPLATE
      - id: OTHER_ID
        name: Other
        template: thanks
"""
    for name, value in {"IMAP_PASSWORD": "s3cret-imap-pw", "TEMPLATE": "thanks", "OTHER_ID": "other"}.items():
        text = text.replace(name, swap.get(name.lower(), value))
    return text


def test_a_good_configuration_loads() -> None:
    made = parse_config(GOOD)

    box = made.mailboxes[0]
    assert box.id == "support"
    assert box.imap.password == EnvSecret(env="SUPPORT_IMAP_PASSWORD")
    assert box.processing == LeadProcessing(type="lead", owner="sam")
    assert box.reply_policy is ReplyPolicy.ALL_MATCHING
    assert [r.id for r in box.active_rules()] == ["inline", "ack"]
    ack = box.rules[0]
    assert [c.operator for c in ack.conditions] == [
        ConditionOperator.CONTAINS,
        ConditionOperator.IS_NOT_ANY_OF,
        ConditionOperator.IS_ANY_OF,
    ]
    assert ack.conditions[1].values() == ("boss@acme.example", "cto@acme.example")
    assert ack.conditions[2].values() == ("a@acme.example", "b@acme.example")
    assert made.template_of(ack).subject == "{{ letter.reply_subject }}"


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "{}"])
def test_an_empty_configuration_has_no_mailboxes(text: str) -> None:
    assert parse_config(text).mailboxes == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            _broken("{field: subject, operator: resembles, value: x}"),
            ["mailboxes[0](support).rules[0](ack).conditions[0].operator", "'resembles'"],
        ),
        (
            _broken("{field: priority, operator: contains, value: x}"),
            ["mailboxes[0](support).rules[0](ack).conditions[0].field", "'priority'"],
        ),
        (
            _broken("{field: subject, operator: contains}"),
            ["mailboxes[0](support).rules[0](ack).conditions[0]", "operator contains needs a non-empty text"],
        ),
        (
            _broken("{field: to, operator: is_any_of, value: []}"),
            [
                "mailboxes[0](support).rules[0](ack).conditions[0]",
                "operator is_any_of needs a list of values",
            ],
        ),
        (
            _broken("{field: body, operator: is_empty, value: nothing}"),
            ["mailboxes[0](support).rules[0](ack).conditions[0]", "takes no value", "'nothing'"],
        ),
        (
            _broken(other_id="ack"),
            ["mailbox 'support'", "rule id 'ack' is used twice"],
        ),
        (
            _broken(template="no-such-template"),
            ["mailbox 'support', rule 'ack'", "unknown template 'no-such-template'"],
        ),
        (
            _broken().replace("smtp: {host: smtp.x}", "smtp: {host: smtp.x, port: 99999}"),
            ["mailboxes[0](support).smtp.port", "99999"],
        ),
        (
            _broken().replace("name: Ack", "name: Ack\n        colour: red"),
            ["mailboxes[0](support).rules[0](ack).colour", "'red'"],
        ),
        (
            _broken().replace("        name: Other\n", ""),
            ["mailboxes[0](support).rules[1](other).name", "Field required"],
        ),
    ],
    ids=[
        "unknown operator",
        "unknown field",
        "missing value",
        "empty list",
        "value on is_empty",
        "duplicate rule id",
        "unknown template name",
        "port out of range",
        "unknown key",
        "missing rule name",
    ],
)
def test_errors_name_the_mailbox_the_rule_and_the_bad_value(text: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, origin="mailroom.yaml")

    message = str(caught.value)
    assert message.startswith("mailroom.yaml: invalid configuration:")
    for part in expected:
        assert part in message
    assert "Traceback" not in message
    assert "pydantic" not in message


@pytest.mark.parametrize(
    "text",
    [
        _broken(other_id="ack"),
        _broken(template="no-such-template"),
        _broken("{field: subject, operator: resembles, value: x}"),
        _broken(imap_password="987654321"),
    ],
    ids=["duplicate rule id", "unknown template name", "unknown operator", "numeric password"],
)
def test_errors_never_show_a_password(text: str) -> None:
    """STYLE.md: secrets never appear in logs, events, exceptions or repr."""
    secret = "987654321" if "987654321" in text else "s3cret-imap-pw"

    with pytest.raises(ConfigError) as caught:
        parse_config(text)

    assert secret not in str(caught.value)


@pytest.mark.parametrize(
    "text", ["mailboxes: [unclosed", "a: b: c", "\t- tab"], ids=["unclosed", "nested", "tab"]
)
def test_not_yaml_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^<config>: not valid YAML"):
        parse_config(text)


@pytest.mark.parametrize("text", ["- a list", "just a string", "42"])
def test_yaml_that_is_not_a_mapping_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match=r"\(top level\)"):
        parse_config(text)


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mailroom.yaml"
    path.write_text(GOOD, encoding="utf-8")

    assert load_config(path) == parse_config(GOOD)


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read the configuration"):
        FileConfigSource(path).load()


def test_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(_broken("{field: priority, operator: contains, value: x}"), encoding="utf-8")

    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: invalid configuration"):
        load_config(path)
