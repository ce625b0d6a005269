"""Reply templates: checked at load, rendered in a sandbox, html escaped, subjects one line."""

from __future__ import annotations

from typing import Any

import pytest

from responder.errors import TemplateError
from responder.render import (
    VARIABLES,
    RenderedReply,
    check_template,
    check_templates,
    render,
    template_variables,
)
from schemas.config import ReplyTemplate
from schemas.errors import ConfigError
from tests.unit.builders import NOW, config, mailbox, rule

LETTER: dict[str, Any] = {
    "subject": "Printer broken",
    "reply_subject": "Re: Printer broken",
    "from_name": "Ann Lee",
    "from_address": "ann@customer.example",
    "to": ["support@acme.example"],
    "cc": [],
    "date": "2024-05-06T07:08:09+00:00",
    "text_body": "Floor 2",
    "message_id": "m1@customer.example",
}


def _vars(**letter: Any) -> dict[str, Any]:
    return template_variables({**LETTER, **letter}, "Acme Support", "support@acme.example", "Ack", NOW)


def _render(body: str, title: str = "s", kind: str = "plain", **letter: Any) -> RenderedReply:
    """Renders a template with body `body` and subject `title`; `letter` overrides the letter's fields."""
    return render(ReplyTemplate(subject=title, body=body, type=kind), _vars(**letter))


@pytest.mark.parametrize(
    ("subject", "body", "expected_subject", "expected_body"),
    [
        ("{{ letter.reply_subject }}", "Hi {{ letter.from_name }}", "Re: Printer broken", "Hi Ann Lee"),
        ("[{{ mailbox.label }}]", "{{ mailbox.email }}", "[Acme Support]", "support@acme.example"),
        ("{{ rule.name }}", "{{ now.strftime('%Y-%m-%d') }}", "Ack", "2024-05-06"),
        ("x", "{{ letter.to | join(', ') }} / {{ letter.cc | length }}", "x", "support@acme.example / 0"),
        (
            "x",
            "{% if letter.from_name %}Dear {{ letter.from_name }}{% else %}Hello{% endif %}",
            "x",
            "Dear Ann Lee",
        ),
        ("x", "line 1\nline 2\n", "x", "line 1\nline 2\n"),
    ],
)
def test_render(subject: str, body: str, expected_subject: str, expected_body: str) -> None:
    rendered = _render(body, subject)

    assert (rendered.subject, rendered.body, rendered.type) == (expected_subject, expected_body, "plain")


@pytest.mark.parametrize(
    ("incoming", "subject"),
    [
        ("Hi\r\nBcc: victim@evil.example", "Re: Hi Bcc: victim@evil.example"),
        ("Hi\nthere", "Re: Hi there"),
        ("a\rb", "Re: a b"),
        ("tab\there", "Re: tab here"),
        ("nul\x00and\x1bescape", "Re: nul and escape"),
        ("line\u2028separator\x85next", "Re: line separator next"),
        ("  padded  ", "Re: padded"),
    ],
)
def test_the_subject_is_folded_to_one_line(incoming: str, subject: str) -> None:
    rendered = _render("b", "Re: {{ letter.subject }}", subject=incoming)

    assert rendered.subject == subject
    assert rendered.subject.isprintable()


def test_html_templates_escape_letter_values() -> None:
    rendered = _render(
        "<p>Dear {{ letter.from_name }}, about {{ letter.subject }}:</p><pre>{{ letter.text_body }}</pre>",
        "Re: {{ letter.subject }}",
        kind="html",
        from_name='<b onclick="x()">Ann</b>',
        subject="<script>alert(1)</script>",
        text_body="a & b < c",
    )

    assert rendered.type == "html"
    assert "<script>" not in rendered.body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.body
    assert "&lt;b onclick=&#34;x()&#34;&gt;Ann&lt;/b&gt;" in rendered.body
    assert "a &amp; b &lt; c" in rendered.body
    assert rendered.body.startswith("<p>Dear ")
    # The subject is a header, not html: it stays as the letter had it.
    assert rendered.subject == "Re: <script>alert(1)</script>"


def test_plain_templates_do_not_escape() -> None:
    rendered = _render("{{ letter.from_name }}", from_name="<b>Ann & Co</b>")

    assert rendered.body == "<b>Ann & Co</b>"


@pytest.mark.parametrize(
    "body",
    [
        "{{ letter.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ now.__class__.__init__.__globals__ }}",
        "{{ letter.items.__self__.__class__ }}",
        "{{ mailbox.__class__.__subclasses__() }}",
        "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ letter.subject.__class__ }}",
    ],
)
def test_reaching_for_python_internals_is_a_template_error(body: str) -> None:
    with pytest.raises(TemplateError, match="sandbox"):
        _render(body)


@pytest.mark.parametrize("kind", ["plain", "html"])
def test_reaching_for_internals_in_the_subject_is_a_template_error(kind: str) -> None:
    with pytest.raises(TemplateError):
        _render("b", "{{ letter.__class__ }}", kind=kind)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{{ nobody }}", "unknown variable"),
        ("{{ letter.no_such_field }}", "unknown variable"),
        ("{{ letter.subject.no_such_attr }}", "unknown variable"),
        ("{% if %}", "syntax error"),
    ],
)
def test_render_errors_are_template_errors(body: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        _render(body)


@pytest.mark.parametrize(
    "body",
    [
        "{% for i in range(1000000) %}{% endfor %}",
        "{% include 'footer' %}",
        "{% extends 'base' %}",
        "{{ 1 / 0 }}",
    ],
    ids=["range over the sandbox limit", "include", "extends", "division by zero"],
)
def test_every_way_a_template_fails_at_render_is_a_template_error(body: str) -> None:
    """The responder turns TemplateError into a ReplyFailed; anything else is dead-lettered instead."""
    with pytest.raises(TemplateError):
        _render(body)


@pytest.mark.parametrize(
    "template",
    [
        ReplyTemplate(subject="{{ letter.reply_subject }}", body="Hello {{ letter.from_name or 'you' }}"),
        ReplyTemplate(subject="[{{ mailbox.label }}] {{ rule.name }}", body="{{ now }}", type="html"),
        ReplyTemplate(subject="static", body="{% set x = letter.subject %}{{ x }}"),
        ReplyTemplate(subject="s", body="{% for a in letter.to %}{{ a }}{% endfor %}"),
    ],
)
def test_check_template_accepts_templates_using_known_variables(template: ReplyTemplate) -> None:
    check_template(template)

    assert render(template, _vars()).subject


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (ReplyTemplate(subject="{{ customer }}", body="b"), "subject: unknown variable(s) customer"),
        (
            ReplyTemplate(subject="s", body="{{ sender }} {{ ticket }}"),
            "body: unknown variable(s) sender, ticket",
        ),
        (
            ReplyTemplate(subject="s", body="{{ letter.x }}{{ Letter }}", type="html"),
            "unknown variable(s) Letter",
        ),
        (ReplyTemplate(subject="{% if %}", body="b"), "subject: syntax error on line 1"),
        (ReplyTemplate(subject="s", body="ok\n{{ unclosed"), "body: syntax error on line 2"),
        (ReplyTemplate(subject="s", body="{% for x in y %}{% endfor %}"), "unknown variable(s) y"),
    ],
)
def test_check_template_rejects_unknown_variables_and_syntax_errors(
    template: ReplyTemplate, message: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        check_template(template)

    assert message in str(caught.value)


def test_check_template_names_the_known_variables() -> None:
    with pytest.raises(TemplateError) as caught:
        check_template(ReplyTemplate(subject="{{ x }}", body="b"))

    assert "known: letter, mailbox, now, record, rule" in str(caught.value)
    assert VARIABLES == {"letter", "mailbox", "rule", "record", "now"}


def test_check_templates_accepts_a_good_configuration() -> None:
    good = ReplyTemplate(subject="{{ letter.reply_subject }}", body="Hi {{ letter.from_name }}")
    made = config(
        mailbox(rule("inline", template=good), rule("named", template="thanks")), templates={"thanks": good}
    )

    check_templates(made)

    assert made.template_of(made.mailboxes[0].rules[1]) == good


def test_check_templates_names_the_mailbox_and_rule_of_a_bad_inline_template() -> None:
    bad = ReplyTemplate(subject="s", body="{{ customer_name }}")
    made = config(mailbox(rule("fine"), rule("urgent", template=bad)), mailbox(mailbox_id="sales"))

    with pytest.raises(ConfigError) as caught:
        check_templates(made)

    message = str(caught.value)
    assert "mailbox 'support', rule 'urgent'" in message
    assert "customer_name" in message


def test_check_templates_names_a_bad_named_template() -> None:
    made = config(
        mailbox(rule("ack", template="thanks")),
        templates={"thanks": ReplyTemplate(subject="{% if %}", body="b")},
    )

    with pytest.raises(ConfigError, match=r"templates\.thanks: subject: syntax error"):
        check_templates(made)


RECORD_TEMPLATE = ReplyTemplate(
    subject="{{ letter.reply_subject }}{% if record %} [{{ record.type }} {{ record.id }}]{% endif %}",
    body="{% if record %}Your {{ record.type }} is {{ record.id }}.{% else %}Thank you.{% endif %}",
)


def test_the_record_is_a_variable_of_its_own_lifted_out_of_the_letter_fields() -> None:
    check_template(RECORD_TEMPLATE)
    variables = _vars(record={"type": "case", "id": "c-42"})

    rendered = render(RECORD_TEMPLATE, variables)

    assert rendered.subject == "Re: Printer broken [case c-42]"
    assert rendered.body == "Your case is c-42."
    assert "record" not in variables["letter"]


@pytest.mark.parametrize("letter", [{**LETTER, "record": None}, LETTER], ids=["none", "older request"])
def test_without_a_record_the_variable_is_none(letter: dict[str, Any]) -> None:
    variables = template_variables(letter, "Acme Support", "support@acme.example", "Ack", NOW)

    rendered = render(RECORD_TEMPLATE, variables)

    assert variables["record"] is None
    assert (rendered.subject, rendered.body) == ("Re: Printer broken", "Thank you.")


def test_using_the_record_where_there_is_none_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="unknown variable"):
        _render("Case {{ record.id }}", record=None)


@pytest.mark.parametrize(
    "body",
    [
        "{{ letter.update({'subject': 'changed'}) }}",
        "{{ letter.to.append('victim@evil.example') }}",
        "{% set _ = letter.pop('subject') %}",
        "{{ mailbox.clear() }}",
    ],
)
def test_a_template_cannot_change_its_inputs(body: str) -> None:
    variables = _vars()

    with pytest.raises(TemplateError, match="sandbox forbids"):
        render(ReplyTemplate(subject="s", body=body), variables)

    assert variables["letter"]["subject"] == "Printer broken"
    assert variables["letter"]["to"] == ["support@acme.example"]


@pytest.mark.parametrize(
    "body",
    [
        "{{ 'a' * 30000000 }}",
        "{{ ['a'] * 30000000 }}",
        "{{ 30000000 * 'ab' }}",
        "{{ 10 ** 10000000 }}",
        "{% for i in range(100000) %}{{ letter.subject * 10 }}{% endfor %}",
    ],
)
def test_a_template_cannot_build_a_huge_reply(body: str) -> None:
    with pytest.raises(TemplateError, match="too large"):
        _render(body)


def test_a_template_that_runs_too_long_is_stopped() -> None:
    body = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}done"

    with pytest.raises(TemplateError, match="took longer than"):
        render(ReplyTemplate(subject="s", body=body), _vars(), seconds=0.5)
