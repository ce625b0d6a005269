"""The web admin's JSON API, used by the pages' scripts: the mailboxes a user may see, one mailbox (never its
secrets), a rule turned on or off, "Check Connection / Retrieve Folders" and the template preview. Every
write needs the session's CSRF token in `X-CSRF-Token`; rights are checked as for the pages."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from admin import forms
from admin.forms import FormError
from admin.pages import mailbox_values
from admin.preview import preview
from admin.web import admin_of, check_csrf_header, current_user, mailbox_for
from mailroom import grids
from runtime.check import CheckReport, check_imap, check_smtp
from schemas.config import ImapSettings, SmtpSettings
from schemas.events import utcnow

__all__ = ["routes"]

# Which field a failed step of the connection check points at.
_STEP_FIELDS = {
    "dns": "host",
    "tcp": "port",
    "tls": "security",
    "greeting": "port",
    "capabilities": "security",
    "starttls": "security",
    "ehlo": "port",
    "ehlo after starttls": "security",
    "login": "password",
    "capabilities after login": "host",
    "folders": "folders",
}


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body is not a JSON object")
    return body


async def mailboxes(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    state = admin.store.state()
    config = state.config() if not state.empty() else None
    rows = [
        row for org in user.organizations() for row in (grids.mailboxes_json(config, org) if config else [])
    ]
    return JSONResponse(rows)


async def mailbox(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    box = mailbox_for(admin, user, request.path_params["mailbox_id"])
    state = admin.store.state()
    values = mailbox_values(box)
    values.update({f"{part}.password": forms.secret_state(box, part) for part in forms.SECRET_PARTS})
    return JSONResponse({"mailbox": values, "rules": grids.rules_json(state.config(), box.id)["rules"]})


async def rule_active(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    box = mailbox_for(admin, user, request.path_params["mailbox_id"], write=True)
    check_csrf_header(request)
    body = await _json(request)
    if not isinstance(body.get("active"), bool):
        raise HTTPException(400, 'give {"active": true|false}')
    rule_id = request.path_params["rule_id"]
    if rule_id not in {r.id for r in box.rules}:
        raise HTTPException(404, "no such rule")
    state = admin.store.state()
    document = forms.config_document(state)
    index = [b["id"] for b in document["mailboxes"]].index(box.id)
    for rule in document["mailboxes"][index]["rules"]:
        if rule["id"] == rule_id:
            rule["active"] = body["active"]
    try:
        changes = forms.prepare(document, state, utcnow(), user.name, index)
    except FormError as exc:
        return JSONResponse({"errors": exc.errors}, status_code=400)
    if changes:
        await run_in_threadpool(admin.store.publish, changes, utcnow(), user.name)
    return JSONResponse({"mailbox_id": box.id, "rule_id": rule_id, "active": body["active"]})


def _report(report: CheckReport | None, part: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    if report is None:
        return None, {}
    failed = report.failed
    errors = {}
    if failed is not None:
        text = f"{failed.name} failed: {failed.detail}" + (f" ({failed.advice})" if failed.advice else "")
        errors[f"{part}.{_STEP_FIELDS.get(failed.name, 'host')}"] = text
    shown = {
        "ok": report.ok,
        "summary": report.summary(),
        "steps": [
            {"name": s.name, "ok": s.ok, "detail": s.detail, "ms": round(s.elapsed_ms), "advice": s.advice}
            for s in report.steps
        ],
        "folders": [{"name": f.name, "role": f.special_use, "exists": f.exists} for f in report.folders],
    }
    return shown, errors


async def check(request: Request) -> Response:
    """Check Connection / Retrieve Folders, from the form's values (a blank password: the stored one)."""
    admin = admin_of(request)
    user = current_user(request, admin)
    check_csrf_header(request)
    body = await _json(request)
    old = None
    if body.get("mailbox_id"):
        old = mailbox_for(admin, user, str(body["mailbox_id"]), write=True)
    elif not user.may_change(str(body.get("organization", ""))):
        raise HTTPException(403, "not an organization you administer")
    errors: dict[str, str] = {}
    settings: dict[str, Any] = {}
    for part, model in (("imap", ImapSettings), ("smtp", SmtpSettings)):
        given = body.get(part) or {}
        values = {k: v for k, v in given.items() if k != "password" and v not in ("", None)}
        if given.get("password"):
            values["password"] = SecretStr(str(given["password"]))
        elif old is not None and getattr(old, part).password is not None:
            values["password"] = getattr(old, part).password
        elif part == "imap":
            errors["imap.password"] = "type the password to check the connection"
            continue
        try:
            settings[part] = model.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "host"
                errors.setdefault(f"{part}.{where}", str(error["msg"]).removeprefix("Value error, "))
    if errors:
        return JSONResponse({"ok": False, "errors": errors, "imap": None, "smtp": None})
    folders = [str(f) for f in body.get("folders") or []]
    imap = await run_in_threadpool(check_imap, settings["imap"], admin.check_timeout, folders)
    smtp = await run_in_threadpool(check_smtp, settings["smtp"], admin.check_timeout)
    imap_shown, imap_errors = _report(imap, "imap")
    smtp_shown, smtp_errors = _report(smtp, "smtp")
    return JSONResponse(
        {
            "ok": imap.ok and smtp.ok,
            "errors": imap_errors | smtp_errors,
            "imap": imap_shown,
            "smtp": smtp_shown,
        }
    )


async def preview_template(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    check_csrf_header(request)
    body = await _json(request)
    box = mailbox_for(admin, user, str(body.get("mailbox_id", "")))
    shown = preview(
        str(body.get("type", "plain")),
        str(body.get("subject", "")),
        str(body.get("body", "")),
        box.label,
        box.email,
        str(body.get("rule_name", "")),
    )
    return JSONResponse(shown)


routes = [
    Route("/api/mailboxes", mailboxes),
    Route("/api/mailboxes/{mailbox_id}", mailbox),
    Route("/api/mailboxes/{mailbox_id}/rules/{rule_id}", rule_active, methods=["PATCH"]),
    Route("/api/check", check, methods=["POST"]),
    Route("/api/preview", preview_template, methods=["POST"]),
]
