"""What `mailroom mailboxes list`, `rules list` and `templates list` print, from configurations (no I/O)."""

from __future__ import annotations

import json

import pytest

from mailroom.grids import (
    condition_text,
    conditions_text,
    mailboxes_json,
    render_mailboxes,
    render_rules,
    render_templates,
    rules_json,
    templates_json,
)
from runtime.loading import parse_config
from schemas.config import Condition, MailroomConfig
from schemas.errors import UnknownMailboxError
from tests.unit.builders import rule

SECRETS = ("imap-secret-4711", "smtp-secret-0815", "token-secret-42", "client-secret-7", "refresh-secret-9")

CONFIG = """
templates:
  thanks: {subject: "Re: {{ letter.subject }}", body: "Thanks"}
  invoice: {subject: Your invoice, body: "<p>Attached</p>", type: html, organization: acme}
  welcome: {subject: Welcome, body: Hi, organization: globex}
  unused: {subject: Never sent, body: x, organization: acme}
mailboxes:
  - id: support
    organization: acme
    label: Support
    email: support@acme.example
    imap: {host: imap.acme.example, username: support, password: imap-secret-4711}
    smtp: {host: smtp.acme.example, username: support, password: smtp-secret-0815}
    processing: {type: case}
    folders: [INBOX, Orders]
    rules:
      - id: vip
        name: VIP invoices
        position: 2
        created_at: 2024-05-01T09:00:00+02:00
        conditions:
          - {field: subject, operator: contains, value: invoice}
          - {field: from, operator: matches_regex, value: '@vip\\.example$'}
        template: invoice
      - {id: ack, name: Acknowledge, position: 5, template: thanks}
      - {id: old, name: Old greeting, active: false, template: {subject: Old, body: b, type: html}}
      - id: hello
        name: Hello
        position: 1
        conditions: [{field: subject, operator: is_equal_to, value: Hello, case_sensitive: true}]
        template: {subject: Hello back, body: b}
      - {id: same, name: Same position as ack, position: 5, template: thanks}
  - id: sales
    organization: acme
    label: Acme Sales
    email: sales@acme.example
    imap:
      host: outlook.office365.com
      port: 143
      security: starttls
      username: sales@acme.example
      auth: xoauth2
      oauth2:
        token_endpoint: https://login.example/token
        client_id: mailroom
        client_secret: client-secret-7
        refresh_token: refresh-secret-9
    smtp: {host: smtp.acme.example, oauth2: {token: token-secret-42}}
    processing: {type: lead}
    reply_policy: all_matching
  - id: help
    organization: globex
    label: Help
    email: help@globex.example
    imap: {host: imap.globex.example, username: help, password: {env: GLOBEX_IMAP_PASSWORD}}
    smtp: {host: smtp.globex.example}
    rules:
      - {id: hi, name: Welcome, template: welcome}
      - {id: thx, name: Thanks, active: false, template: thanks}
"""


@pytest.fixture(scope="module")
def config() -> MailroomConfig:
    return parse_config(CONFIG)


def _columns(header: str, line: str) -> dict[str, str]:
    """The cells of a table line, cut where the header's column names start."""
    names = header.split()
    starts = [header.index(name) for name in names] + [len(line)]
    return {name: line[starts[i] : starts[i + 1]].strip() for i, name in enumerate(names)}


def test_mailboxes_are_one_row_each_by_organization_then_label_in_aligned_columns(
    config: MailroomConfig,
) -> None:
    lines = render_mailboxes(config).splitlines()

    header = "ID  ORGANIZATION  LABEL  EMAIL  PROCESSING  FOLDERS  RULES  IMAP  AUTH"
    assert lines[0].split() == header.split()
    assert [line.split()[0] for line in lines[1:]] == ["sales", "support", "help"]
    rows = [_columns(lines[0], line) for line in lines[1:]]
    assert rows[0] == {
        "ID": "sales",
        "ORGANIZATION": "acme",
        "LABEL": "Acme Sales",
        "EMAIL": "sales@acme.example",
        "PROCESSING": "lead",
        "FOLDERS": "INBOX",
        "RULES": "0/0 active",
        "IMAP": "outlook.office365.com:143 starttls",
        "AUTH": "xoauth2",
    }
    assert rows[1]["FOLDERS"] == "INBOX, Orders"
    assert rows[1]["RULES"] == "4/5 active"
    assert rows[1]["IMAP"] == "imap.acme.example:993 tls"
    assert rows[1]["AUTH"] == "password"
    assert rows[2]["PROCESSING"] == "none"
    assert all(line == line.rstrip() for line in lines)


def test_mailboxes_of_one_organization_and_of_an_unknown_one(config: MailroomConfig) -> None:
    lines = render_mailboxes(config, "globex").splitlines()

    assert len(lines) == 2
    assert lines[1].split()[:2] == ["help", "globex"]
    assert render_mailboxes(config, "initech") == (
        "no mailboxes for organization 'initech' (organizations: acme, globex)"
    )
    assert mailboxes_json(config, "initech") == []


def test_no_mailboxes_at_all_says_so() -> None:
    empty = parse_config("")

    assert render_mailboxes(empty) == "no mailboxes configured"
    assert render_templates(empty) == "no named templates configured"


def test_mailboxes_json_has_every_column_as_values(config: MailroomConfig) -> None:
    found = mailboxes_json(config)

    assert [box["id"] for box in found] == ["sales", "support", "help"]
    assert found[1] == {
        "id": "support",
        "organization": "acme",
        "label": "Support",
        "email": "support@acme.example",
        "processing": "case",
        "folders": ["INBOX", "Orders"],
        "rules": {"active": 4, "total": 5},
        "imap": {"host": "imap.acme.example", "port": 993, "security": "tls", "auth": "password"},
    }


def test_rules_are_listed_in_the_order_the_matcher_tries_them_then_the_inactive_ones(
    config: MailroomConfig,
) -> None:
    lines = render_rules(config, "support").splitlines()

    assert lines[0] == (
        "Mailbox support (Support <support@acme.example>): 5 rules, 4 active, "
        "reply policy first_match: the first active rule that matches answers"
    )
    assert lines[1].split() == [
        "#",
        "POSITION",
        "ACTIVE",
        "NAME",
        "ID",
        "TEMPLATE",
        "CREATED",
        "(UTC)",
        "CONDITIONS",
    ]
    rows = [_columns(lines[1].replace("CREATED (UTC)", "CREATED_(UTC)"), line) for line in lines[2:]]
    assert [(r["#"], r["ID"], r["ACTIVE"]) for r in rows] == [
        ("1", "hello", "yes"),
        ("2", "vip", "yes"),
        ("3", "ack", "yes"),
        ("4", "same", "yes"),
        ("-", "old", "no"),
    ]
    hello, vip, ack, _, old = rows
    assert hello["POSITION"] == "1"
    assert hello["TEMPLATE"] == "custom (plain): Hello back"
    assert hello["CONDITIONS"] == 'subject is equal to "Hello" (case-sensitive)'
    assert vip["NAME"] == "VIP invoices"
    assert vip["TEMPLATE"] == "invoice"
    assert vip["CREATED_(UTC)"] == "2024-05-01 07:00:00"
    assert vip["CONDITIONS"] == 'subject contains "invoice" and from matches /@vip\\.example$/'
    assert ack["CONDITIONS"] == "every letter"
    assert ack["CREATED_(UTC)"] == "-"
    assert old["TEMPLATE"] == "custom (html): Old"
    assert all(line == line.rstrip() for line in lines)


def test_a_mailbox_without_rules_and_the_all_matching_policy_say_so(config: MailroomConfig) -> None:
    assert (
        render_rules(config, "sales")
        == "Mailbox sales (Acme Sales <sales@acme.example>): no auto-response rules"
    )
    assert rules_json(config, "sales") == {"mailbox_id": "sales", "reply_policy": "all_matching", "rules": []}
    head = render_rules(config, "help").splitlines()[0]
    assert head.endswith(
        ": 2 rules, 1 active, reply policy first_match: the first active rule that matches answers"
    )


def test_an_unknown_mailbox_is_an_error_naming_the_known_ones(config: MailroomConfig) -> None:
    with pytest.raises(UnknownMailboxError, match=r"^no mailbox 'nope' in the configuration \(mailboxes: "):
        render_rules(config, "nope")
    with pytest.raises(UnknownMailboxError, match="support, sales, help"):
        rules_json(config, "nope")


def test_rules_json_keeps_the_conditions_as_data_and_in_words(config: MailroomConfig) -> None:
    found = rules_json(config, "support")

    assert [(r["order"], r["id"]) for r in found["rules"]] == [
        (1, "hello"),
        (2, "vip"),
        (3, "ack"),
        (4, "same"),
        (None, "old"),
    ]
    vip = found["rules"][1]
    assert vip == {
        "order": 2,
        "position": 2,
        "active": True,
        "id": "vip",
        "name": "VIP invoices",
        "conditions": [
            {"field": "subject", "operator": "contains", "value": "invoice", "case_sensitive": False},
            {
                "field": "from",
                "operator": "matches_regex",
                "value": "@vip\\.example$",
                "case_sensitive": False,
            },
        ],
        "conditions_text": 'subject contains "invoice" and from matches /@vip\\.example$/',
        "template": {"name": "invoice"},
        "created_at": "2024-05-01T09:00:00+02:00",
    }
    assert found["rules"][4]["template"] == {"name": None, "type": "html", "subject": "Old"}
    assert json.loads(json.dumps(found)) == found


@pytest.mark.parametrize(
    ("field", "operator", "value", "text"),
    [
        ("subject", "contains", "invoice", 'subject contains "invoice"'),
        ("body", "does_not_contain", 'say "hi"', 'body does not contain "say \\"hi\\""'),
        ("to", "starts_with", "sales", 'to starts with "sales"'),
        ("cc", "ends_with", ".example", 'cc ends with ".example"'),
        ("reply_to", "is_equal_to", "a@b.example", 'reply-to is equal to "a@b.example"'),
        (
            "header:X-Priority",
            "is_any_of",
            ["1", "1 (Highest)"],
            'header x-priority is any of "1", "1 (Highest)"',
        ),
        (
            "from",
            "is_not_any_of",
            "a@x.example, b@x.example",
            'from is not any of "a@x.example", "b@x.example"',
        ),
        ("bcc", "is_empty", None, "bcc is empty"),
        ("body", "is_not_empty", None, "body is not empty"),
        ("from", "matches_regex", "@vip\\.example$", "from matches /@vip\\.example$/"),
        ("subject", "does_not_match_regex", "^re:", "subject does not match /^re:/"),
        ("has_attachments", "is_true", None, "has attachments"),
        ("has_attachments", "is_false", None, "has no attachments"),
        ("received", "before", "2024-12-24", "received before 2024-12-24"),
        ("received", "after", "2024-05-01T09:00:00+02:00", "received at or after 2024-05-01T09:00:00+02:00"),
    ],
)
def test_each_operator_reads_as_words(field: str, operator: str, value: object, text: str) -> None:
    assert (
        condition_text(Condition.model_validate({"field": field, "operator": operator, "value": value}))
        == text
    )


def test_a_rule_without_conditions_answers_every_letter() -> None:
    assert conditions_text(rule("ack")) == "every letter"


def test_templates_show_their_organization_and_the_rules_using_them(config: MailroomConfig) -> None:
    lines = render_templates(config).splitlines()

    assert lines[0].split() == ["NAME", "ORGANIZATION", "TYPE", "SUBJECT", "USED", "BY"]
    rows = {
        r["NAME"]: r for r in (_columns(lines[0].replace("USED BY", "USED_BY"), line) for line in lines[1:])
    }
    assert [line.split()[0] for line in lines[1:]] == ["thanks", "invoice", "unused", "welcome"]
    assert rows["thanks"] == {
        "NAME": "thanks",
        "ORGANIZATION": "all",
        "TYPE": "plain",
        "SUBJECT": "Re: {{ letter.subject }}",
        "USED_BY": "support/ack, support/same, help/thx (inactive)",
    }
    assert rows["invoice"]["TYPE"] == "html"
    assert rows["invoice"]["USED_BY"] == "support/vip"
    assert rows["unused"]["USED_BY"] == "-"
    assert rows["welcome"]["ORGANIZATION"] == "globex"


def test_templates_of_one_organization_are_its_own_and_those_for_all(config: MailroomConfig) -> None:
    found = templates_json(config, "globex")

    assert found == [
        {
            "name": "thanks",
            "organization": None,
            "type": "plain",
            "subject": "Re: {{ letter.subject }}",
            "used_by": [{"mailbox_id": "help", "rule_id": "thx", "active": False}],
        },
        {
            "name": "welcome",
            "organization": "globex",
            "type": "plain",
            "subject": "Welcome",
            "used_by": [{"mailbox_id": "help", "rule_id": "hi", "active": True}],
        },
    ]
    assert "invoice" not in render_templates(config, "globex")


def test_no_secret_is_ever_shown(config: MailroomConfig) -> None:
    shown = [
        render_mailboxes(config),
        json.dumps(mailboxes_json(config)),
        render_templates(config),
        json.dumps(templates_json(config)),
    ]
    for box in config.mailboxes:
        shown += [render_rules(config, box.id), json.dumps(rules_json(config, box.id))]

    for text in shown:
        for secret in SECRETS:
            assert secret not in text


def test_a_line_break_in_a_label_or_subject_keeps_the_row_on_one_line() -> None:
    made = parse_config(
        """
templates:
  two: {subject: "first\\nsecond", body: x}
mailboxes:
  - id: odd
    organization: acme
    label: "Odd\\nlabel"
    email: odd@acme.example
    imap: {host: imap.acme.example, username: odd, password: pw}
    smtp: {host: smtp.acme.example}
"""
    )

    assert len(render_mailboxes(made).splitlines()) == 2
    assert "Odd label" in render_mailboxes(made)
    assert render_templates(made).splitlines()[1].split() == ["two", "all", "plain", "first", "second", "-"]
