"""The web admin in a real browser (Debian's chromium driven by Playwright), against real Kafka, Dovecot and
SMTP, with the four workers and the admin each running as a separate process.

One scenario in steps, in order: an organization's admin logs in, creates a mailbox (checking its
connection and ticking INBOX), makes it convert letters to cases, adds a rule with two conditions and a
custom html template saved as a named template; a letter APPENDed to the mailbox then gets that reply and
a case, and the rule's dry run lists the letter as answered. Bad input in each form shows its error at
the field and publishes nothing; the other organization's admin can neither see nor change the mailbox.
Each screen is saved as a PNG under $MAILROOM_ARTIFACTS/screenshots.
"""

from __future__ import annotations

import email
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest

from deploy.local.dovecot import Dovecot
from deploy.local.mailbox import append_message, fetch_messages
from deploy.local.pipeline import Pipeline, TopicReader, local_mailbox, wait_until
from deploy.local.ports import free_port
from deploy.local.smtp import SmtpRelay
from schemas import topics
from schemas.events import CaseCreated, ReplySent
from tests.e2e.conftest import PipelineFactory, dump_logs
from tests.letters import letter

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("MAILROOM_ARTIFACTS", ROOT / ".artifacts")) / "screenshots"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OLGA, GUS = ("olga", "olga-password-1"), ("gus", "gus-password-1")

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing: the browser tests need Debian's chromium (make setup)")
    pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium: make setup)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


class World:
    """What the scenario's steps share: the servers, the pipeline, the admin's address, the browser."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    pipeline: Pipeline
    reader: TopicReader
    dovecot: Dovecot
    relay: SmtpRelay
    url: str
    desk: tuple[str, str]
    customer: tuple[str, str]
    browser: Any
    olga: Any
    message_id: str


def _user(dovecot: Dovecot, name: str) -> tuple[str, str]:
    address, password = f"{name}-{secrets.token_hex(4)}@mailroom.test", secrets.token_urlsafe(12)
    dovecot.add_user(address, password)
    return address, password


def _add_admin_user(pipeline: Pipeline, name: str, password: str, org: str, role: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mailroom", "admin", "users", "add", name, "--org", org, "--role", role],
        env=pipeline.env(),
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def world(pipeline_factory: PipelineFactory, dovecot: Dovecot, smtp_relay: SmtpRelay) -> Iterator[World]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    desk, customer, other = (_user(dovecot, n) for n in ("desk", "customer", "globex"))
    # The other organization's mailbox: the configuration topic is not empty when the workers start.
    globex = local_mailbox(
        "globex-desk", other[0], other[1], dovecot.imap_port, smtp_relay.port, read_from=None
    ) | {"organization": "globex", "label": "Globex Desk"}
    port = free_port()
    pipeline, reader = pipeline_factory(
        {"mailboxes": [globex]},
        MAILROOM_ADMIN_PORT=str(port),
    )
    pipeline.env_override("MAILROOM_ADMIN_USERS", str(pipeline.workdir / "admin-users.yaml"))
    _add_admin_user(pipeline, *OLGA, "acme", "admin")
    _add_admin_user(pipeline, *GUS, "globex", "admin")
    pipeline.start()
    pipeline.start(["admin"])
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    try:
        wait_until("the admin to answer", healthy, 60)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{pipeline.log('admin')[-3000:]}") from exc
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            olga = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            yield World(
                pipeline=pipeline,
                reader=reader,
                dovecot=dovecot,
                relay=smtp_relay,
                url=url,
                desk=desk,
                customer=customer,
                browser=browser,
                olga=olga,
                message_id="",
            )
        finally:
            browser.close()
    pipeline.stop(["admin"])


def _shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _config_records(w: World) -> list[tuple[bytes, bytes | None]]:
    return [(r.key, r.value) for r in w.reader.records(topics.CONFIG)]


def _error_at(page: Any, name: str) -> str:
    text: str = page.locator(f'[data-error-for="{name}"]').first.inner_text()
    return text.strip()


def _log_in(page: Any, url: str, name: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/mailboxes")


def test_1_log_in_and_see_the_mailbox_grid(world: World) -> None:
    page = world.olga
    page.goto(f"{world.url}/mailboxes")
    page.wait_for_url(f"{world.url}/login")
    page.fill("#name", OLGA[0])
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    assert "wrong name or password" in page.inner_text("main")
    _shot(page, "01-login")
    _log_in(page, world.url, *OLGA)
    assert page.locator('[data-organization="acme"]').count() == 1
    assert page.locator('[data-organization="globex"]').count() == 0
    assert "Globex Desk" not in page.inner_text("main")
    _shot(page, "02-mailbox-grid-empty")


def _fill_mailbox(page: Any, w: World, imap_port: int) -> None:
    page.fill('[name="id"]', "desk")
    page.fill('[name="label"]', "Acme Desk")
    page.fill('[name="email"]', w.desk[0])
    page.fill('[name="imap.host"]', "127.0.0.1")
    page.fill('[name="imap.port"]', str(imap_port))
    page.select_option('[name="imap.security"]', "none")
    page.fill('[name="imap.username"]', w.desk[0])
    page.fill('[name="imap.password"]', w.desk[1])
    page.uncheck('[name="imap.verify_certificates"]')
    page.fill('[name="smtp.host"]', "127.0.0.1")
    page.fill('[name="smtp.port"]', str(w.relay.port))
    page.select_option('[name="smtp.security"]', "none")


def test_2_create_a_mailbox_checking_its_connection(world: World) -> None:
    page, w = world.olga, world
    before = _config_records(w)
    page.click("text=Create Mailbox")
    page.wait_for_url(f"{w.url}/mailboxes/new?organization=acme")

    # An unreachable server: Check Connection names the port; nothing is published.
    closed = free_port()
    _fill_mailbox(page, w, closed)
    page.click("#check-connection")
    page.wait_for_selector(".check-status.failed")
    assert "tcp failed" in _error_at(page, "imap.port")
    _shot(page, "03-mailbox-form-unreachable-server")

    # The right port: the check lists the folders; INBOX is ticked; letters become cases.
    page.fill('[name="imap.port"]', str(w.dovecot.imap_port))
    page.click("#check-connection")
    page.wait_for_selector(".check-status.ok")
    assert _error_at(page, "imap.port") == ""
    page.check('#folders input[value="INBOX"]')
    page.select_option('[name="processing.type"]', "case")
    page.fill('[name="case.owner"]', "olga")

    # An empty label is refused at its field, and the typed password is not sent back.
    page.fill('[name="label"]', "")
    page.click("#save-mailbox")
    page.wait_for_load_state()
    assert _error_at(page, "label") == "required"
    assert page.input_value('[name="imap.password"]') == ""
    _shot(page, "04-mailbox-form-empty-label")
    assert _config_records(w) == before

    page.fill('[name="label"]', "Acme Desk")
    page.fill('[name="imap.password"]', w.desk[1])
    page.check('#folders input[value="INBOX"]')
    page.click("#save-mailbox")
    page.wait_for_url(f"{w.url}/mailboxes/desk?message=Mailbox%20saved")
    assert w.desk[1] not in page.content()
    assert "set (leave blank to keep)" in page.inner_text("main")
    _shot(page, "05-mailbox-form-saved")
    after = [value for key, value in _config_records(w) if key == b"desk"]
    assert len(after) == 1 and after[0] is not None and w.desk[1].encode() not in after[0]
    page.goto(f"{w.url}/mailboxes")
    row = page.locator('tr[data-mailbox="desk"]')
    assert "Convert to Case" in row.inner_text()
    _shot(page, "06-mailbox-grid")


def _condition(page: Any, index: int, field: str, operator: str, value: str, header: str = "") -> None:
    page.click("#add-condition")
    row = page.locator(f'.condition[data-index="{index}"]')
    row.locator(".c-field").select_option(field)
    if header:
        row.locator(".c-header").fill(header)
    row.locator(".c-operator").select_option(operator)
    row.locator(".c-value").fill(value)


def test_3_add_a_rule_with_two_conditions_and_a_template_saved_as_a_template(world: World) -> None:
    page, w = world.olga, world
    before = _config_records(w)
    page.goto(f"{w.url}/mailboxes/desk/rules")
    page.click("text=Add Autoresponse Rule")
    page.wait_for_url(f"{w.url}/mailboxes/desk/rules/new")
    page.fill('[name="name"]', "Urgent letters")
    _condition(page, 0, "subject", "contains", "urgent")
    _condition(page, 1, "from", "matches_regex", "(customer")
    page.select_option('[name="template_choice"]', "custom")
    page.select_option('[name="template.type"]', "html")
    page.fill('[name="template.subject"]', "We hurry: {{ letter.subject }}")
    page.fill('[name="template.body"]', "<p>Hello {{ letter.from_name or letter.from_address }}, on it.</p>")
    sync_api.expect(page.locator("#preview-subject")).to_have_text("We hurry: My printer is broken")
    assert "Hello Ann Lee, on it." in page.frame_locator("#preview-html").locator("body").inner_text()
    _shot(page, "07-rule-form-preview")

    # A bad regex: at its condition.
    page.click("#save-rule")
    page.wait_for_load_state()
    assert "invalid regular expression" in _error_at(page, "conditions.1")
    _shot(page, "08-rule-form-bad-regex")
    page.locator('.condition[data-index="1"] .c-value').fill("@mailroom\\.test$")

    # A broken template: at the content.
    page.fill('[name="template.body"]', "<p>Hello {{ letter.from_name </p>")
    page.click("#save-rule")
    page.wait_for_load_state()
    assert "syntax error" in _error_at(page, "template.body")
    _shot(page, "09-rule-form-broken-template")

    # An empty name: at the name.
    page.fill('[name="template.body"]', "<p>Hello {{ letter.from_name or letter.from_address }}, on it.</p>")
    page.fill('[name="name"]', "")
    page.click("#save-rule")
    page.wait_for_load_state()
    assert _error_at(page, "name") == "required"
    _shot(page, "10-rule-form-empty-name")
    assert _config_records(w) == before

    page.fill('[name="name"]', "Urgent letters")
    page.check('[name="save_as_template"]')
    page.fill('[name="template_name"]', "acme-urgent")
    page.click("#save-rule")
    page.wait_for_url(f"{w.url}/mailboxes/desk/rules?message=Rule%20urgent-letters%20saved")
    row = page.locator('tr[data-rule="urgent-letters"]')
    text = row.inner_text()
    assert 'subject contains "urgent" and from matches /@mailroom\\.test$/' in text
    assert "acme-urgent" in text and "yes" in text
    _shot(page, "11-rules-grid")
    keys = {key for key, _ in _config_records(w)} - {key for key, _ in before}
    assert keys == {b"template:acme-urgent"}


def test_4_a_letter_gets_the_reply_and_a_case(world: World) -> None:
    w = world
    # Every worker has had its seconds to follow the new rule, and the letter arrives in a later second than
    # the rule's created_at (IMAP's INTERNALDATE has whole seconds).
    time.sleep(3)
    raw, message_id = letter(
        w.customer[0], w.desk[0], "urgent: my printer smokes", "Please help.", headers={"Cc": "x@y.test"}
    )
    w.message_id = message_id
    append_message(w.dovecot.host, w.dovecot.imap_port, w.desk[0], w.desk[1], raw)

    def replied() -> list[bytes] | None:
        found = fetch_messages(w.dovecot.host, w.dovecot.imap_port, *w.customer)
        return found or None

    try:
        replies = wait_until("the auto-reply", replied, 60)
        cases = wait_until(
            "the case",
            lambda: [c for c in w.reader.events(topics.CASES, CaseCreated) if c.message_id == message_id],
            30,
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{dump_logs(w.pipeline)}") from exc
    reply = email.message_from_bytes(replies[0], policy=policy.default)
    assert reply["Subject"] == "We hurry: urgent: my printer smokes"
    body = reply.get_body(("html",))
    assert body is not None and "on it." in body.get_content()
    assert cases[0].mailbox_id == "desk" and cases[0].owner == "olga"
    assert [s.mailbox_id for s in w.reader.events(topics.REPLY_OUTCOMES, ReplySent)] == ["desk"]


def test_5_the_rules_dry_run_lists_the_letter_as_answered(world: World) -> None:
    page, w = world.olga, world
    page.goto(f"{w.url}/mailboxes/desk/rules")
    page.locator('tr[data-rule="urgent-letters"]').locator("text=Try").click()
    page.wait_for_url(f"{w.url}/mailboxes/desk/trial?rule=urgent-letters")
    row = page.locator(f'tr[data-message-id="{w.message_id}"]')
    assert "answered by Urgent letters" in row.locator(".verdict").inner_text()
    assert row.locator(".rule-outcome").inner_text() == "matched"
    _shot(page, "12-rule-dry-run")
    page.goto(f"{w.url}/mailboxes/desk/health")
    wait_until(
        "ingest's health report",
        lambda: page.reload() or page.inner_text("#health-state") == "ok",
        30,
    )
    _shot(page, "13-mailbox-health")


def test_6_another_organizations_admin_can_neither_see_nor_change_the_mailbox(world: World) -> None:
    w = world
    before = _config_records(w)
    page = w.browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _log_in(page, w.url, *GUS)
    assert "Globex Desk" in page.inner_text("main")
    assert page.locator('tr[data-mailbox="desk"]').count() == 0
    csrf = page.get_attribute("body", "data-csrf")
    for path in (
        "/mailboxes/desk",
        "/mailboxes/desk/rules",
        "/mailboxes/desk/trial",
        "/mailboxes/desk/health",
    ):
        answer = page.goto(f"{w.url}{path}")
        assert answer is not None and answer.status == 404, path
    _shot(page, "14-other-organization-refused")
    api = page.request
    assert api.get(f"{w.url}/api/mailboxes/desk").status == 404
    assert "desk" not in {m["id"] for m in api.get(f"{w.url}/api/mailboxes").json()}
    answer = api.patch(
        f"{w.url}/api/mailboxes/desk/rules/urgent-letters",
        data={"active": False},
        headers={"X-CSRF-Token": csrf or ""},
    )
    assert answer.status == 404
    answer = api.post(
        f"{w.url}/mailboxes/desk/rules/urgent-letters/delete",
        form={"csrf": csrf or ""},
        headers={"Origin": w.url},
    )
    assert answer.status == 404
    assert _config_records(w) == before
    page.context.close()
