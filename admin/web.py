"""The web admin's request plumbing: the signed session, who is logged in, CSRF checks, the rights a user has
on a mailbox (checked on the server for every page and API call), and page rendering."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin.session import COOKIE, MAX_AGE, csrf_ok, new_session, sign, unsign
from admin.store import Store
from admin.users import User, load_users
from mailroom.configuration import Change
from runtime.configfeed import ConfigState
from schemas.config import Mailbox, MailroomConfig
from schemas.events import utcnow

__all__ = [
    "Admin",
    "NotLoggedIn",
    "SessionMiddleware",
    "admin_of",
    "back",
    "check_csrf_header",
    "checked_form",
    "config_of",
    "current_user",
    "mailbox_for",
    "page",
    "publish",
    "replace_session",
    "secret_token",
]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass
class Admin:
    """What every request needs: where the configuration lives, the users file, the data folder."""

    store: Store
    users_path: Path
    key: bytes
    data_dir: Path
    check_timeout: float = 10.0
    secrets: Path | None = None
    """Where typed passwords are kept (default `data_dir/admin-secrets`)."""

    def users(self) -> dict[str, User]:
        return load_users(self.users_path)

    def secrets_dir(self) -> Path:
        path = self.secrets or self.data_dir / "admin-secrets"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path


class NotLoggedIn(Exception):
    """The request needs a logged-in user: pages go to the login form, the API answers 401."""


class SessionMiddleware:
    """Reads the signed session cookie into `request.state.session` (a fresh one when there is none) and
    writes it back when it is new or replaced; refuses a write whose Origin is another site's."""

    def __init__(self, app: ASGIApp, key: bytes) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(request):
            response = Response("cross-site request refused", status_code=403)
            await response(scope, receive, send)
            return
        session = unsign(request.cookies.get(COOKIE), self.key)
        fresh = session is None
        state = scope.setdefault("state", {})
        state["session"] = session if session is not None else new_session(None)
        state["session_changed"] = fresh

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", _CSP),
                    (b"x-frame-options", b"SAMEORIGIN"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if scope["state"].get("session_changed"):
                    value = sign(scope["state"]["session"], self.key)
                    cookie = f"{COOKIE}={value}; Path=/; Max-Age={MAX_AGE}; HttpOnly; SameSite=Strict"
                    headers.append((b"set-cookie", cookie.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)


_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"form-action 'self'; base-uri 'none'; object-src 'none'"
)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def replace_session(request: Request, user: str | None) -> None:
    """A new session (and CSRF token) at login and logout."""
    request.state.session = new_session(user)
    request.state.session_changed = True


def current_user(request: Request, admin: Admin) -> User:
    name = request.state.session.get("user")
    user = admin.users().get(name) if name else None
    if user is None:
        raise NotLoggedIn
    return user


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token is the session's; 403 otherwise."""
    form = await request.form()
    token = form.get("csrf")
    if not csrf_ok(request.state.session, token if isinstance(token, str) else None):
        raise HTTPException(403, "the form is out of date or comes from another site: reload the page")
    return form


def check_csrf_header(request: Request) -> None:
    if not csrf_ok(request.state.session, request.headers.get("x-csrf-token")):
        raise HTTPException(403, "missing or wrong X-CSRF-Token")


def mailbox_for(admin: Admin, user: User, mailbox_id: str, write: bool = False) -> Mailbox:
    """The mailbox, when the user may see it (and change it: `write`). An organization that is not the
    user's is 404, as if the mailbox did not exist; a viewer who tries to change one gets 403."""
    found = admin.store.state().mailboxes.get(mailbox_id)
    if found is None or not user.may_see(found.mailbox.organization):
        raise HTTPException(404, "no such mailbox")
    if write and not user.may_change(found.mailbox.organization):
        raise HTTPException(403, "viewers cannot change mailboxes")
    return found.mailbox


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    context.setdefault("csrf", request.state.session["csrf"])
    context.setdefault("user", None)
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def secret_token() -> str:
    return secrets.token_hex(6)


def admin_of(request: Request) -> Admin:
    admin: Admin = request.app.state.admin
    return admin


def config_of(state: ConfigState) -> MailroomConfig:
    """The configuration the topic holds (an empty one before anything was published)."""
    return state.config() if not state.empty() else MailroomConfig()


def back(url: str, message: str = "") -> RedirectResponse:
    """After a POST: to a page that shows `message`."""
    return RedirectResponse(url + (f"?message={quote(message)}" if message else ""), status_code=303)


async def publish(
    admin: Admin, changes: list[Change], user: User, files: dict[Path, str] | None = None
) -> None:
    """Writes the secret files a form's passwords need (mode 0600), then publishes the changes as `user`."""
    for path, value in (files or {}).items():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
    if changes:
        await run_in_threadpool(admin.store.publish, changes, utcnow(), user.name)
