"""The web admin on an in-process configuration store, driven by Starlette's TestClient."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from admin.app import create_app
from admin.store import MemoryStore
from admin.users import add_user, save_users
from admin.web import Admin

with warnings.catch_warnings():
    # starlette asks for httpx2 when only httpx is installed; the client works the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PASSWORDS = {"olga": "olga-pw", "vera": "vera-pw", "gus": "gus-pw"}


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def admin(tmp_path: Path, store: MemoryStore) -> Admin:
    users: dict[str, Any] = {}
    add_user(users, "olga", PASSWORDS["olga"], "acme", "admin")
    add_user(users, "vera", PASSWORDS["vera"], "acme", "viewer")
    add_user(users, "gus", PASSWORDS["gus"], "globex", "admin")
    save_users(tmp_path / "users.yaml", users)
    return Admin(store, tmp_path / "users.yaml", b"k" * 32, tmp_path / "data")


def csrf_of(html: str) -> str:
    found = re.search(r'data-csrf="([^"]+)"', html) or re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


class Browser:
    """A TestClient logged in as one user, with the session's CSRF token."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def post(self, url: str, data: dict[str, Any], **kw: Any) -> Any:
        return self.client.post(url, data={"csrf": self.csrf, **data}, follow_redirects=False, **kw)


@pytest.fixture
def login(admin: Admin) -> Iterator[Callable[[str], Browser]]:
    clients: list[TestClient] = []

    def make(name: str) -> Browser:
        client = TestClient(create_app(admin), base_url="http://testserver")
        clients.append(client)
        form = client.get("/login")
        answer = client.post(
            "/login",
            data={"csrf": csrf_of(form.text), "name": name, "password": PASSWORDS[name]},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        return Browser(client, csrf_of(client.get("/mailboxes").text))

    yield make
    for client in clients:
        client.close()


def mailbox_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "id": "desk",
        "organization": "acme",
        "label": "Acme Desk",
        "email": "desk@acme.test",
        "imap.host": "127.0.0.1",
        "imap.port": "1143",
        "imap.security": "none",
        "imap.username": "desk@acme.test",
        "imap.password": "imap-secret-1",
        "smtp.host": "127.0.0.1",
        "smtp.port": "2525",
        "smtp.security": "none",
        "folders": ["INBOX"],
        "processing.type": "case",
        "case.owner": "olga",
        "case.ignore_automated": "1",
        "reply_policy": "first_match",
        "limits.per_thread": "1",
        "limits.per_sender_per_hour": "3",
        "limits.per_sender_per_day": "10",
    }
    form.update(changes)
    return form


def rule_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "Urgent letters",
        "active": "1",
        "conditions.0.field": "subject",
        "conditions.0.operator": "contains",
        "conditions.0.value": "urgent",
        "conditions.1.field": "header",
        "conditions.1.header": "X-Priority",
        "conditions.1.operator": "is_any_of",
        "conditions.1.value": "1, 2",
        "template_choice": "custom",
        "template.type": "html",
        "template.subject": "Re: {{ letter.subject }}",
        "template.body": "<p>Hello {{ letter.from_name }}</p>",
    }
    form.update(changes)
    return form
