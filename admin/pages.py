"""The web admin's mailbox screens: the mailbox grid, the mailbox form, the dry run of the rules on a
mailbox's last letters, and a mailbox's health with its dead letters."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin import forms
from admin.forms import FormError, Prepared
from admin.trial import try_letters
from admin.users import User
from admin.web import (
    Admin,
    admin_of,
    back,
    checked_form,
    config_of,
    current_user,
    mailbox_for,
    page,
    publish,
    secret_token,
)
from mailroom import deadletters, grids
from runtime.configfeed import ConfigState
from schemas.config import Mailbox
from schemas.events import utcnow

__all__ = ["mailbox_values", "routes"]


# -- the mailbox grid and form ------------------------------------------------------------------------------


async def mailbox_grid(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    state = admin.store.state()
    config = config_of(state)
    health = await run_in_threadpool(admin.store.health)
    organizations = []
    for org in user.organizations():
        rows = grids.mailboxes_json(config, org)
        for row in rows:
            found = health.get(row["id"])
            row["health"] = found.state if found is not None else "unknown"
        organizations.append({"name": org, "role": user.role_in(org), "rows": rows})
    return page(request, "mailboxes.html", user=user, organizations=organizations)


def mailbox_values(box: Mailbox | None) -> dict[str, Any]:
    """A mailbox as the form's fields (never a secret: passwords are shown as set or not)."""
    if box is None:
        return {
            "imap.port": "993",
            "imap.security": "tls",
            "imap.verify_certificates": True,
            "smtp.port": "587",
            "smtp.security": "starttls",
            "smtp.verify_certificates": True,
            "folders": [],
            "processing.type": "none",
            "lead.ignore_automated": True,
            "case.ignore_automated": True,
            "reply_policy": "first_match",
            "limits.per_thread": "1",
            "limits.per_sender_per_hour": "3",
            "limits.per_sender_per_day": "10",
        }
    values: dict[str, Any] = {"id": box.id, "organization": box.organization, "label": box.label}
    values["email"] = box.email
    for part in forms.SECRET_PARTS:
        settings = getattr(box, part)
        values.update(
            {
                f"{part}.host": settings.host,
                f"{part}.port": str(settings.port),
                f"{part}.security": settings.security.value,
                f"{part}.username": settings.username or "",
                f"{part}.verify_certificates": settings.verify_certificates,
            }
        )
    values["folders"] = list(box.folders)
    p = box.processing
    values["processing.type"] = p.type
    values["lead.ignore_automated"] = values["case.ignore_automated"] = getattr(p, "ignore_automated", True)
    for name in ("owner", "source", "channel", "assignee", "status", "priority"):
        values[f"{p.type}.{name}"] = getattr(p, name, None) or ""
    values["case.tags"] = ", ".join(getattr(p, "tags", ()))
    values["reply_policy"] = box.reply_policy.value
    for name in ("per_thread", "per_sender_per_hour", "per_sender_per_day"):
        values[f"limits.{name}"] = str(getattr(box.limits, name))
    values["limits.robot_senders"] = box.limits.robot_senders or ""
    values["limits.reply_to_spam"] = box.limits.reply_to_spam
    values["authorized.users"] = ", ".join(box.authorized.users)
    values["authorized.roles"] = ", ".join(box.authorized.roles)
    return values


def _values_of_form(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in form.items() if not k.endswith(".password") and k != "csrf"}
    values["folders"] = [str(v) for v in form.getlist("folders")]
    return values


def _mailbox_page(
    request: Request,
    user: User,
    box: Mailbox | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    writable = box is None or user.may_change(box.organization)
    return page(
        request,
        "mailbox.html",
        status_code=status_code,
        user=user,
        box=box,
        v=values,
        errors=errors or {},
        writable=writable,
        organizations=user.organizations("admin"),
        secrets={part: forms.secret_state(box, part) for part in forms.SECRET_PARTS},
        message=request.query_params.get("message", ""),
    )


async def mailbox_new(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    if not user.organizations("admin"):
        raise HTTPException(403, "only an organization's admins add mailboxes")
    values = mailbox_values(None)
    values["organization"] = request.query_params.get("organization", user.organizations("admin")[0])
    if request.method == "GET":
        return _mailbox_page(request, user, None, values)
    return await _save_mailbox(request, admin, user, None)


async def mailbox_edit(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    box_id = request.path_params["mailbox_id"]
    if request.method == "GET":
        box = mailbox_for(admin, user, box_id)
        return _mailbox_page(request, user, box, mailbox_values(box))
    return await _save_mailbox(request, admin, user, mailbox_for(admin, user, box_id, write=True))


async def _save_mailbox(request: Request, admin: Admin, user: User, old: Mailbox | None) -> Response:
    form = await checked_form(request)
    state = admin.store.state()
    try:
        prepared = _prepare_mailbox(admin, user, state, form, old)
    except FormError as exc:
        return _mailbox_page(request, user, old, _values_of_form(form), exc.errors, 400)
    await publish(admin, prepared.changes, user, prepared.secret_files)
    box_id = old.id if old is not None else str(form.get("id", "")).strip()
    return back(f"/mailboxes/{box_id}", "Mailbox saved" if prepared.changes else "No changes")


def _prepare_mailbox(
    admin: Admin, user: User, state: ConfigState, form: FormData, old: Mailbox | None
) -> Prepared:
    organization = str(form.get("organization", "")).strip()
    if not user.may_change(organization):
        raise FormError({"organization": "not an organization you administer"})
    document = forms.config_document(state)
    box_doc, files = forms.mailbox_document(form, old, admin.secrets_dir(), secret_token())
    ids = [b["id"] for b in document["mailboxes"]]
    if old is None:
        if box_doc["id"] in ids:
            raise FormError({"id": "this id is used by another mailbox already"})
        document["mailboxes"].append(box_doc)
        index = len(ids)
    else:
        index = ids.index(old.id)
        document["mailboxes"][index] = box_doc
    missing = {k: "needed for a new mailbox" for k in ("imap.password",) if old is None and not form.get(k)}
    if not box_doc["folders"]:
        missing["folders"] = "tick at least one folder (Check Connection / Retrieve Folders lists them)"
    required = {
        "label": box_doc["label"],
        "email": box_doc["email"],
        "imap.host": box_doc["imap"].get("host", ""),
    }
    if old is None:
        required["id"] = box_doc["id"]
    missing.update({name: "required" for name, value in required.items() if not str(value).strip()})
    if missing:
        raise FormError(missing)
    try:
        changes = forms.prepare(document, state, utcnow(), user.name, index, required=required)
    except FormError as exc:
        for name in ("email", "label", "id"):
            if name in exc.errors and "already" in exc.errors[name]:
                exc.errors[name] = f"this {'address' if name == 'email' else name} is used by another mailbox"
        raise
    return Prepared(changes, files)


async def mailbox_delete(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    box = mailbox_for(admin, user, request.path_params["mailbox_id"], write=True)
    await checked_form(request)
    state = admin.store.state()
    document = forms.config_document(state)
    document["mailboxes"] = [b for b in document["mailboxes"] if b["id"] != box.id]
    try:
        changes = forms.prepare(document, state, utcnow(), user.name, None)
    except FormError as exc:
        return back("/mailboxes", f"Not deleted: {exc}")
    await publish(admin, changes, user)
    return back("/mailboxes", f"Mailbox {box.label} deleted")


# -- dry run and health --------------------------------------------------------------------------------------


async def trial(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    box = mailbox_for(admin, user, request.path_params["mailbox_id"])
    try:
        last = max(1, min(500, int(request.query_params.get("last", "20"))))
    except ValueError:
        last = 20
    rule_id = request.query_params.get("rule") or None
    letters = await run_in_threadpool(admin.store.letters, box.id)
    config = config_of(admin.store.state())
    rows = try_letters(letters, box, config, utcnow(), last, rule_id)
    rule = next((r for r in box.rules if r.id == rule_id), None)
    return page(request, "trial.html", user=user, box=box, rows=rows, last=last, rule=rule)


async def health(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    box = mailbox_for(admin, user, request.path_params["mailbox_id"])
    found = (await run_in_threadpool(admin.store.health)).get(box.id)
    dead = deadletters.rows(await run_in_threadpool(admin.store.dead_letters), box.id)
    return page(request, "health.html", user=user, box=box, health=found, dead=dead)


routes = [
    Route("/mailboxes", mailbox_grid),
    Route("/mailboxes/new", mailbox_new, methods=["GET", "POST"]),
    Route("/mailboxes/{mailbox_id}", mailbox_edit, methods=["GET", "POST"]),
    Route("/mailboxes/{mailbox_id}/delete", mailbox_delete, methods=["POST"]),
    Route("/mailboxes/{mailbox_id}/trial", trial),
    Route("/mailboxes/{mailbox_id}/health", health),
]
