"""The check at load renders every template for sample letters: a broken one stops the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from responder.errors import TemplateError
from responder.render import check_template, check_templates
from runtime.loading import load_config
from schemas.config import MailroomConfig, NamedTemplate, ReplyTemplate, TemplateVariant
from schemas.errors import ConfigError
from tests.unit.builders import config, mailbox, rule

ROOT = Path(__file__).resolve().parents[3]


def _refusal(template: ReplyTemplate) -> str:
    """What check_templates says of `template` as the inline template of rule 'urgent' of 'support'."""
    made = config(mailbox(rule("ack"), rule("urgent", template=template)), mailbox(mailbox_id="sales"))
    with pytest.raises(ConfigError) as caught:
        check_templates(made)
    return str(caught.value)


def test_a_misspelt_field_is_refused_naming_the_template_the_part_and_the_field() -> None:
    message = _refusal(ReplyTemplate(subject="{{ letter.reply_subject }}", body="Re {{ letter.sujbect }}"))

    assert message == (
        "mailbox 'support', rule 'urgent': template body: unknown variable: "
        "'letter' has no attribute 'sujbect'"
    )


@pytest.mark.parametrize(
    ("subject", "missing"),
    [
        ("{{ mailbox.adress }}", "'mailbox' has no attribute 'adress'"),
        ("{{ rule.title }}", "'rule' has no attribute 'title'"),
        ("{% if record %}{{ record.number }}{% endif %}", "'record' has no attribute 'number'"),
        ("{{ letter['from'] }}", "'letter' has no attribute 'from'"),
        ("{{ letter.subject.titel }}", "'str object' has no attribute 'titel'"),
    ],
)
def test_a_misspelt_field_of_any_variable_is_refused(subject: str, missing: str) -> None:
    message = _refusal(ReplyTemplate(subject=subject, body="b"))

    assert message.startswith("mailbox 'support', rule 'urgent': template subject: unknown variable: ")
    assert missing in message


@pytest.mark.parametrize(
    ("body", "attribute"),
    [
        ("{{ ''.__class__ }}", "__class__"),
        ("{{ letter.subject.__class__.__mro__ }}", "__class__"),
        ("{{ now.__class__ }}", "__class__"),
        ("{{ letter._variable }}", "_variable"),
        ("{{ letter.update({'subject': 'x'}) }}", "update"),
    ],
)
def test_an_unsafe_attribute_is_refused(body: str, attribute: str) -> None:
    message = _refusal(ReplyTemplate(subject="s", body=body, type="html"))

    assert message.startswith("mailbox 'support', rule 'urgent': template body: ")
    assert "the sandbox forbids" in message
    assert f"access to attribute '{attribute}'" in message
    assert "unsafe" in message


def test_a_bad_named_template_is_named() -> None:
    made = config(
        mailbox(rule("ack", template="thanks")),
        templates={"thanks": ReplyTemplate(subject="s", body="Hello {{ letter.form_name }}")},
    )

    with pytest.raises(ConfigError) as caught:
        check_templates(made)

    assert str(caught.value) == (
        "templates.thanks: body: unknown variable: 'letter' has no attribute 'form_name'"
    )


def _with_variants(**variants: TemplateVariant) -> NamedTemplate:
    return NamedTemplate(subject="Thank you", body="Hello {{ letter.from_name }}", variants=variants)


@pytest.mark.parametrize(
    ("template", "where"),
    [
        (
            _with_variants(de=TemplateVariant(subject="Danke", body="Hallo {{ letter.vorname }}")),
            "templates.thanks.variants.de: body: unknown variable: 'letter' has no attribute 'vorname'",
        ),
        (
            _with_variants(
                de=TemplateVariant(subject="Danke", body="Hallo"),
                fr=TemplateVariant(subject="Merci {{ letter.__class__ }}", body="Bonjour"),
            ),
            "templates.thanks.variants.fr: subject: the template tried something the sandbox forbids",
        ),
        (
            NamedTemplate(
                subject="{{ letter.reply_subjet }}",
                body="b",
                language="de",
                variants={"en": TemplateVariant(subject="Thanks", body="b")},
            ),
            "templates.thanks (default variant, de): subject: unknown variable: "
            "'letter' has no attribute 'reply_subjet'",
        ),
        (
            _with_variants(de=TemplateVariant(subject="Danke", body="{% if %}")),
            "templates.thanks.variants.de: body: syntax error on line 1",
        ),
    ],
    ids=["unknown field", "unsafe attribute", "the default variant", "syntax error"],
)
def test_every_language_variant_is_checked_and_named(template: NamedTemplate, where: str) -> None:
    made = config(mailbox(rule("ack", template="thanks")), templates={"thanks": template})

    with pytest.raises(ConfigError) as caught:
        check_templates(made)

    assert str(caught.value).startswith(where)


def test_a_variant_is_checked_as_the_type_it_is_sent_as() -> None:
    """A variant without a type is html when its template is, and is checked with autoescape as the
    responder renders it."""
    template = NamedTemplate(
        subject="s",
        body="<p>{{ letter.from_name }}</p>",
        type="html",
        variants={"de": TemplateVariant(subject="s", body="<p>{{ letter.from_name | e }}</p>")},
    )
    made = config(mailbox(rule("ack", template="thanks")), templates={"thanks": template})

    check_templates(made)

    assert made.templates["thanks"].by_language()["de"].type == "html"


@pytest.mark.parametrize(
    "template",
    [
        ReplyTemplate(subject="{{ letter.reply_subject }}", body="{% if record %}{{ record.id }}{% endif %}"),
        ReplyTemplate(
            subject="{{ letter.reply_subject }}"
            "{% if record %} [{{ record.type }} {{ record.id }}]{% endif %}",
            body="{% if record %}Your {{ record.type }} is {{ record.id }}.{% else %}Thank you.{% endif %}",
        ),
        ReplyTemplate(subject="s", body="Your case: {{ record.id if record else 'none' }}"),
        ReplyTemplate(subject="s", body="Hello {{ letter.from_name or letter.from_address }},"),
        ReplyTemplate(subject="s", body="{% if letter.from_name %}Dear {{ letter.from_name }}{% endif %}"),
        ReplyTemplate(subject="s", body="{% if letter.date %}{{ letter.date[:10] }}{% endif %}"),
        ReplyTemplate(subject="s", body="{{ letter.cc | join(', ') }} {{ letter.to | first }}"),
        ReplyTemplate(subject="s", body="{{ letter.text_body[:100] }}"),
        ReplyTemplate(subject="s", body="{{ now.strftime('%Y-%m-%d') }} {{ rule.name }} {{ mailbox.email }}"),
        ReplyTemplate(
            subject="{{ letter.subject | upper }}", body="<p>{{ letter.message_id }}</p>", type="html"
        ),
    ],
)
def test_good_templates_pass_with_and_without_the_optional_values(template: ReplyTemplate) -> None:
    check_template(template)
    check_templates(config(mailbox(rule("ack", template=template))))


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("Your case: {{ record.id }}", "'None' has no attribute 'id'"),
        ("Sent on {{ letter.date[:10] }}", "rendering failed: TypeError"),
        ("Dear {{ letter.from_name.split()[0] }}", "has no element 0"),
    ],
)
def test_a_value_some_letters_lack_used_unguarded_is_refused_saying_so(body: str, problem: str) -> None:
    with pytest.raises(TemplateError) as caught:
        check_template(ReplyTemplate(subject="s", body=body))

    message = str(caught.value)
    assert message.startswith("body, for a letter with no record, sender name, date, cc or subject: ")
    assert problem in message


def test_a_template_too_large_for_the_sample_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"rule 'urgent': template body: .*too large"):
        check_templates(
            config(mailbox(rule("urgent", template=ReplyTemplate(subject="s", body="{{ 'a' * 300000 }}"))))
        )


def test_the_text_body_is_there_for_templates_that_name_it_as_for_the_responder() -> None:
    """The matcher sends the body only to templates that name `text_body`; one reaching it another way
    fails on every letter, so the check refuses it too."""
    check_template(ReplyTemplate(subject="s", body="{{ letter.text_body | truncate(20) }}"))

    with pytest.raises(TemplateError, match="'letter' has no attribute 'text_body'"):
        check_template(ReplyTemplate(subject="s", body="{{ letter['text' ~ '_body'] }}"))


def test_the_example_configuration_passes() -> None:
    made = load_config(ROOT / "deploy" / "mailroom.example.yaml")

    check_templates(made)

    assert made.templates


def test_the_demo_configuration_passes() -> None:
    from deploy.local.demo import _config as demo_config

    check_templates(MailroomConfig.model_validate(demo_config(1143, 1025)))
