"""The web admin's pages and API on an in-process store: who may do what (checked on the server), CSRF,
secrets that never come back, and refused input that changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from admin.store import MemoryStore
from admin.web import Admin
from tests.unit.admin.conftest import Browser, mailbox_form, rule_form

Login = Callable[[str], Browser]


def _errors(html: str) -> dict[str, str]:
    return {k: v.strip() for k, v in re.findall(r'data-error-for="([^"]*)">([^<]*)<', html) if v.strip()}


@pytest.fixture
def olga(login: Login, store: MemoryStore) -> Browser:
    browser = login("olga")
    answer = browser.post("/mailboxes/new", mailbox_form())
    assert answer.status_code == 303, _errors(answer.text)
    answer = browser.post("/mailboxes/desk/rules/new", rule_form())
    assert answer.status_code == 303, _errors(answer.text)
    return browser


def test_healthz_answers_without_a_login(admin: Admin) -> None:
    from admin.app import create_app
    from tests.unit.admin.conftest import TestClient

    with TestClient(create_app(admin)) as client:
        assert client.get("/healthz").text == "ok"
        assert client.get("/mailboxes", follow_redirects=False).headers["location"] == "/login"
        assert client.get("/api/mailboxes").status_code == 401


def test_the_session_cookie_is_http_only_and_same_site_strict(admin: Admin) -> None:
    from admin.app import create_app
    from tests.unit.admin.conftest import TestClient

    with TestClient(create_app(admin)) as client:
        cookie = client.get("/login").headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_wrong_password_is_refused(login: Login, admin: Admin) -> None:
    from admin.app import create_app
    from tests.unit.admin.conftest import TestClient, csrf_of

    with TestClient(create_app(admin)) as client:
        token = csrf_of(client.get("/login").text)
        answer = client.post("/login", data={"csrf": token, "name": "olga", "password": "nope"})
        assert answer.status_code == 401 and "wrong name or password" in answer.text


def test_a_saved_mailbox_never_shows_its_password(olga: Browser, store: MemoryStore) -> None:
    page = olga.client.get("/mailboxes/desk").text
    api = olga.client.get("/api/mailboxes/desk").text
    secret = store.state().mailboxes["desk"].mailbox.imap.password
    for shown in (page, api):
        assert "imap-secret-1" not in shown and str(getattr(secret, "file", "")) not in shown
    assert "set (leave blank to keep)" in page
    path = Path(secret.file)  # type: ignore[union-attr]
    assert path.read_text() == "imap-secret-1" and oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_blank_password_keeps_the_stored_one(olga: Browser, store: MemoryStore) -> None:
    before = store.state().mailboxes["desk"].mailbox.imap.password
    answer = olga.post("/mailboxes/desk", mailbox_form(**{"imap.password": "", "label": "Desk 2"}))
    assert answer.status_code == 303
    after = store.state().mailboxes["desk"].mailbox
    assert after.imap.password == before and after.label == "Desk 2"


def test_refused_input_is_shown_at_its_field_and_publishes_nothing(olga: Browser, store: MemoryStore) -> None:
    published = len(store.published)
    answer = olga.post("/mailboxes/desk", mailbox_form(label="", **{"imap.port": "x"}))
    assert answer.status_code == 400 and _errors(answer.text) == {"label": "required"}
    answer = olga.post("/mailboxes/desk", mailbox_form(**{"imap.port": "x"}))
    assert answer.status_code == 400 and "imap.port" in _errors(answer.text)
    bad_regex = {"conditions.0.operator": "matches_regex", "conditions.0.value": "(x"}
    answer = olga.post("/mailboxes/desk/rules/urgent-letters", rule_form(**bad_regex))
    assert "invalid regular expression" in _errors(answer.text)["conditions.0"]
    answer = olga.post("/mailboxes/desk/rules/new", rule_form(**{"template.body": "{{ x"}))
    assert "template.body" in _errors(answer.text)
    answer = olga.post("/mailboxes/desk/rules/new", rule_form(name=" "))
    assert _errors(answer.text) == {"name": "required"}
    assert len(store.published) == published


def test_save_response_as_template_makes_a_named_template_the_rule_uses(
    olga: Browser, store: MemoryStore
) -> None:
    answer = olga.post(
        "/mailboxes/desk/rules/urgent-letters",
        rule_form(save_as_template="1", template_name="acme-urgent"),
    )
    assert answer.status_code == 303, _errors(answer.text)
    state = store.state()
    assert state.templates["acme-urgent"].template.organization == "acme"
    assert state.mailboxes["desk"].mailbox.rules[0].template == "acme-urgent"
    grid = olga.client.get("/mailboxes/desk/rules").text
    assert "acme-urgent" in grid and "subject contains &#34;urgent&#34;" in grid


def test_rules_are_reordered_deactivated_and_deleted(olga: Browser, store: MemoryStore) -> None:
    assert olga.post("/mailboxes/desk/rules/new", rule_form(name="Second")).status_code == 303
    assert olga.post("/mailboxes/desk/rules/second/up", {}).status_code == 303
    rules = store.state().mailboxes["desk"].mailbox.rules
    assert [(r.id, r.position) for r in sorted(rules, key=lambda r: r.position)] == [
        ("second", 1),
        ("urgent-letters", 2),
    ]
    assert olga.post("/mailboxes/desk/rules/second/active", {"active": "false"}).status_code == 303
    assert not next(r for r in store.state().mailboxes["desk"].mailbox.rules if r.id == "second").active
    assert olga.post("/mailboxes/desk/rules/second/delete", {}).status_code == 303
    assert [r.id for r in store.state().mailboxes["desk"].mailbox.rules] == ["urgent-letters"]


def test_a_post_without_the_csrf_token_or_from_another_site_is_refused(
    olga: Browser, store: MemoryStore
) -> None:
    published = len(store.published)
    answer = olga.client.post("/mailboxes/desk/rules/urgent-letters/delete", data={})
    assert answer.status_code == 403
    answer = olga.client.post(
        "/mailboxes/desk/rules/urgent-letters/delete",
        data={"csrf": olga.csrf},
        headers={"Origin": "http://evil.example"},
    )
    assert answer.status_code == 403
    answer = olga.client.patch("/api/mailboxes/desk/rules/urgent-letters", json={"active": False})
    assert answer.status_code == 403
    assert len(store.published) == published


def test_the_api_changes_a_rule_with_the_csrf_header(olga: Browser, store: MemoryStore) -> None:
    answer = olga.client.patch(
        "/api/mailboxes/desk/rules/urgent-letters",
        json={"active": False},
        headers={"X-CSRF-Token": olga.csrf},
    )
    assert answer.status_code == 200
    assert not store.state().mailboxes["desk"].mailbox.rules[0].active


def test_another_organizations_admin_gets_404_for_pages_and_api(
    olga: Browser, login: Login, store: MemoryStore
) -> None:
    gus = login("gus")
    published = len(store.published)
    for path in (
        "/mailboxes/desk",
        "/mailboxes/desk/rules",
        "/mailboxes/desk/trial",
        "/mailboxes/desk/health",
    ):
        assert gus.client.get(path).status_code == 404, path
    assert gus.client.get("/api/mailboxes/desk").status_code == 404
    assert gus.client.get("/api/mailboxes").json() == []
    assert "Acme Desk" not in gus.client.get("/mailboxes").text
    assert gus.post("/mailboxes/desk", mailbox_form(organization="globex")).status_code == 404
    assert gus.post("/mailboxes/desk/rules/urgent-letters/delete", {}).status_code == 404
    assert gus.post("/mailboxes/desk/delete", {}).status_code == 404
    answer = gus.client.patch(
        "/api/mailboxes/desk/rules/urgent-letters", json={"active": False}, headers={"X-CSRF-Token": gus.csrf}
    )
    assert answer.status_code == 404
    answer = gus.client.post(
        "/api/check", json={"mailbox_id": "desk", "imap": {}, "smtp": {}}, headers={"X-CSRF-Token": gus.csrf}
    )
    assert answer.status_code == 404
    # Nor can a mailbox be made in an organization that is not theirs.
    answer = gus.post("/mailboxes/new", mailbox_form(id="sneaky", email="s@acme.test"))
    assert answer.status_code == 400 and "organization" in _errors(answer.text)
    assert len(store.published) == published


def test_a_viewer_sees_but_cannot_change(olga: Browser, login: Login, store: MemoryStore) -> None:
    vera = login("vera")
    page = vera.client.get("/mailboxes/desk")
    assert page.status_code == 200 and "<fieldset disabled>" in page.text
    published = len(store.published)
    assert vera.post("/mailboxes/desk", mailbox_form()).status_code == 403
    assert vera.post("/mailboxes/desk/rules/new", rule_form(name="x")).status_code == 403
    assert vera.post("/mailboxes/desk/rules/urgent-letters/delete", {}).status_code == 403
    assert vera.client.get("/mailboxes/new").status_code == 403
    assert len(store.published) == published


def test_the_preview_renders_the_template_on_the_sample_letter(olga: Browser) -> None:
    shown = olga.client.post(
        "/api/preview",
        json={
            "mailbox_id": "desk",
            "type": "html",
            "subject": "Re: {{ letter.subject }}",
            "body": "<b>{{ x }}</b>",
        },
        headers={"X-CSRF-Token": olga.csrf},
    ).json()
    assert shown["field"] == "template.body" and "unknown variable" in shown["error"]
    shown = olga.client.post(
        "/api/preview",
        json={
            "mailbox_id": "desk",
            "type": "html",
            "subject": "{{ letter.reply_subject }}",
            "body": "<b>{{ letter.from_name }}</b>",
        },
        headers={"X-CSRF-Token": olga.csrf},
    ).json()
    assert shown == {
        "type": "html",
        "subject": "Re: My printer is broken",
        "body": "<b>Ann Lee</b>",
        "error": None,
        "field": None,
    }
