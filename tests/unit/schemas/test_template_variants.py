"""Named templates in several languages: which variant a letter gets, and what the configuration refuses."""

from __future__ import annotations

import pytest

from runtime.loading import parse_config
from schemas.config import NamedTemplate, ReplyTemplate, TemplateVariant
from schemas.errors import ConfigError
from tests.unit.builders import config, mailbox, rule

THANKS = NamedTemplate(
    subject="Thank you",
    body="Hello",
    variants={
        "de": TemplateVariant(subject="Danke", body="Hallo"),
        "de-AT": TemplateVariant(subject="Danke schön", body="Servus"),
        "fr": TemplateVariant(subject="Merci", body="Bonjour", type="html"),
        "pt-BR": TemplateVariant(subject="Obrigado", body="Olá"),
    },
)


@pytest.mark.parametrize(
    ("languages", "subject"),
    [
        ((), "Thank you"),
        (("de",), "Danke"),
        (("fr", "de"), "Merci"),
        (("ja", "de"), "Danke"),
        (("de-ch",), "Danke"),
        (("de-at",), "Danke schön"),
        (("de-at-1996",), "Danke schön"),
        (("DE-CH",), "Danke"),
        (("pt",), "Thank you"),
        (("pt-br",), "Obrigado"),
        (("en-us", "de"), "Thank you"),
        (("ja", "ko"), "Thank you"),
        (("deu",), "Thank you"),
    ],
    ids=[
        "no language: the default",
        "exact",
        "first wanted wins",
        "first one it has",
        "prefix: de-CH gets de",
        "a whole tag before its prefix",
        "the longest prefix it has",
        "any case",
        "never a longer tag for a shorter one",
        "region variant",
        "the default's language is a variant too",
        "none it has: the default",
        "a prefix is whole subtags",
    ],
)
def test_the_variant_is_the_first_language_it_has(languages: tuple[str, ...], subject: str) -> None:
    assert THANKS.variant(languages).subject == subject


def test_a_variant_is_a_plain_reply_template_of_its_templates_type_unless_it_has_one() -> None:
    html = NamedTemplate(
        subject="s",
        body="<p>b</p>",
        type="html",
        organization="acme",
        variants={
            "de": TemplateVariant(subject="s", body="<p>d</p>"),
            "fr": TemplateVariant(subject="s", body="f", type="plain"),
        },
    )

    assert html.variant(["de"]) == ReplyTemplate(subject="s", body="<p>d</p>", type="html")
    assert html.variant(["fr"]) == ReplyTemplate(subject="s", body="f", type="plain")
    assert html.variant([]) == ReplyTemplate(subject="s", body="<p>b</p>", type="html")
    assert list(html.by_language()) == ["en", "de", "fr"]


def test_template_of_chooses_the_variant_for_the_letters_languages() -> None:
    made = config(mailbox(rule("named", template="thanks"), rule("own")), templates={"thanks": THANKS})
    named, own = made.mailboxes[0].rules

    assert made.template_of(named, ("de-ch", "fr")) == ReplyTemplate(subject="Danke", body="Hallo")
    assert made.template_of(named) == ReplyTemplate(subject="Thank you", body="Hello")
    assert made.template_of(own, ("de",)) == own.template  # an inline template has no variants


def test_the_default_language_may_be_any() -> None:
    german = NamedTemplate(
        subject="Danke",
        body="Hallo",
        language="de",
        variants={"en": TemplateVariant(subject="Thanks", body="Hi")},
    )

    assert german.variant(["en-GB"]).subject == "Thanks"
    assert german.variant(["it"]).subject == "Danke"
    assert german.variant(["de-CH"]).subject == "Danke"


def test_variants_load_from_yaml() -> None:
    made = parse_config(
        """
templates:
  thanks:
    language: en
    subject: Thank you
    body: Hello
    variants:
      de: {subject: Danke, body: Hallo}
      fr: {subject: Merci, body: Bonjour}
"""
    )

    assert made.templates["thanks"].variant(["fr"]).subject == "Merci"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{language: e n, subject: s, body: b}",
            "templates.thanks.language: not a language tag like en, de or de-CH (got 'e n')",
        ),
        (
            "{subject: s, body: b, variants: {de_CH: {subject: s, body: b}}}",
            "templates.thanks.variants: not a language tag like en, de or de-CH (got 'de_CH')",
        ),
        (
            "{subject: s, body: b, variants: {'123': {subject: s, body: b}}}",
            "templates.thanks.variants: not a language tag like en, de or de-CH (got '123')",
        ),
        (
            "{subject: s, body: b, variants: {de: {subject: s, body: b}, DE: {subject: s, body: b}}}",
            "templates.thanks.variants: 'de' and 'DE' are one language (tags ignore case)",
        ),
        (
            "{subject: s, body: b, variants: {EN: {subject: s, body: b}}}",
            "templates.thanks: variants: 'en' is the language of the template's own subject and body",
        ),
        (
            "{subject: s, body: b, variants: {de: {subject: s}}}",
            "templates.thanks.variants.de.body: Field required",
        ),
        (
            "{subject: s, body: b, variants: {de: {subject: s, body: b, type: pdf}}}",
            "templates.thanks.variants.de.type: Input should be 'plain' or 'html'",
        ),
    ],
)
def test_a_bad_variant_is_refused_naming_the_field(template: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"templates:\n  thanks: {template}\n")

    assert message in str(caught.value)
