"""The web admin as an ASGI app (Starlette): login, the pages, the JSON API and its own static files, all
served by one process. `create_app` is the entry for tests; `mailroom admin` serves it with uvicorn."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from admin import api, pages, rule_pages
from admin.users import verify_password
from admin.web import Admin, NotLoggedIn, SessionMiddleware, checked_form, page, replace_session

__all__ = ["create_app"]

_STATIC = Path(__file__).parent / "static"
# Checked when the name is unknown, so that a login takes as long whether or not the user exists.
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _admin(request: Request) -> Admin:
    admin: Admin = request.app.state.admin
    return admin


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def home(request: Request) -> Response:
    return RedirectResponse("/mailboxes", status_code=303)


async def login(request: Request) -> Response:
    if request.method == "GET":
        return page(request, "login.html", error="", name="")
    form = await checked_form(request)
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    user = _admin(request).users().get(name)
    ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
    if user is None or not ok:
        return page(request, "login.html", status_code=401, error="wrong name or password", name=name)
    replace_session(request, user.name)
    return RedirectResponse("/mailboxes", status_code=303)


async def logout(request: Request) -> Response:
    await checked_form(request)
    replace_session(request, None)
    return RedirectResponse("/login", status_code=303)


async def _not_logged_in(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "log in first"}, status_code=401)
    return RedirectResponse("/login", status_code=303)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    return page(request, "error.html", status_code=exc.status_code, status=exc.status_code, detail=exc.detail)


def create_app(admin: Admin) -> Starlette:
    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/", home),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            *pages.routes,
            *rule_pages.routes,
            *api.routes,
            Mount("/static", StaticFiles(directory=_STATIC), name="static"),
        ],
        middleware=[Middleware(SessionMiddleware, key=admin.key)],
        exception_handlers={NotLoggedIn: _not_logged_in, HTTPException: _refused},
    )
    app.state.admin = admin
    return app
