"""The web admin's rule screens: the Autoresponse Rules grid (reorder, activate, delete) and the rule form
with its condition builder, template chooser and "Save Response as Email Template"."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from admin import forms
from admin.forms import FormError
from admin.users import User
from admin.web import (
    admin_of,
    back,
    checked_form,
    config_of,
    current_user,
    mailbox_for,
    page,
    publish,
)
from mailroom import configuration, grids
from mailroom.configuration import Change
from runtime.configfeed import ConfigState
from schemas.conditions import ConditionField, ConditionOperator
from schemas.config import AutoResponseRule, Mailbox, MailroomConfig
from schemas.errors import ConfigError
from schemas.events import utcnow

__all__ = ["FIELDS", "routes"]

TEXT_OPERATORS = [
    op.value
    for op in ConditionOperator
    if op not in (ConditionOperator.IS_TRUE, ConditionOperator.IS_FALSE)
    and op not in (ConditionOperator.BEFORE, ConditionOperator.AFTER)
]
FIELDS = {
    **{f.value: TEXT_OPERATORS for f in ConditionField},
    "has_attachments": ["is_true", "is_false"],
    "received": ["before", "after"],
    "header": TEXT_OPERATORS,
}
"""Every condition field (`header` stands for `header:<Name>`) and the operators it takes."""


# -- the rules grid and form ---------------------------------------------------------------------------------


def _rule_rows(box: Mailbox) -> list[dict[str, Any]]:
    rows = []
    for rule in forms.rules_in_order(box):
        template = rule.template
        rows.append(
            {
                "id": rule.id,
                "position": rule.position,
                "active": rule.active,
                "name": rule.name,
                "conditions": grids.conditions_text(rule),
                "template": template if isinstance(template, str) else f"custom ({template.type})",
                "subject": "" if isinstance(template, str) else template.subject,
            }
        )
    return rows


async def rules_grid(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    box = mailbox_for(admin, user, request.path_params["mailbox_id"])
    return page(
        request,
        "rules.html",
        user=user,
        box=box,
        rows=_rule_rows(box),
        writable=user.may_change(box.organization),
        message=request.query_params.get("message", ""),
    )


def _with_rules(state: ConfigState, box: Mailbox, rules: list[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    document = forms.config_document(state)
    index = [b["id"] for b in document["mailboxes"]].index(box.id)
    document["mailboxes"][index] = {**document["mailboxes"][index], "rules": rules}
    return document, index


async def rule_action(request: Request) -> Response:
    """Move up or down, activate or deactivate, delete: one rule of the grid."""
    admin = admin_of(request)
    user = current_user(request, admin)
    box = mailbox_for(admin, user, request.path_params["mailbox_id"], write=True)
    form = await checked_form(request)
    rule_id, action = request.path_params["rule_id"], request.path_params["action"]
    if action not in ("up", "down", "active", "delete"):
        raise HTTPException(404, "no such action")
    ordered = [r.model_dump(mode="json", exclude_none=True) for r in forms.rules_in_order(box)]
    at = next((i for i, r in enumerate(ordered) if r["id"] == rule_id), None)
    if at is None:
        raise HTTPException(404, "no such rule")
    if action == "up" and at > 0:
        ordered[at - 1], ordered[at] = ordered[at], ordered[at - 1]
    elif action == "down" and at < len(ordered) - 1:
        ordered[at + 1], ordered[at] = ordered[at], ordered[at + 1]
    elif action == "active":
        ordered[at]["active"] = form.get("active") == "true"
    elif action == "delete":
        del ordered[at]
    if action in ("up", "down", "delete"):
        for position, rule in enumerate(ordered, 1):
            rule["position"] = position
    state = admin.store.state()
    document, index = _with_rules(state, box, ordered)
    try:
        changes = forms.prepare(document, state, utcnow(), user.name, index)
    except FormError as exc:
        return back(f"/mailboxes/{box.id}/rules", f"Not changed: {exc}")
    await publish(admin, changes, user)
    return back(f"/mailboxes/{box.id}/rules", "Rules saved")


def _rule_values(rule: AutoResponseRule | None) -> dict[str, Any]:
    if rule is None:
        return {"active": True, "conditions": [], "template_choice": "custom", "template.type": "html"}
    conditions = []
    for c in rule.conditions:
        header = not isinstance(c.field, ConditionField)
        value = ", ".join(c.value) if isinstance(c.value, tuple) else (c.value or "")
        conditions.append(
            {
                "field": "header" if header else str(c.field),
                "header": getattr(c.field, "name", ""),
                "operator": c.operator.value,
                "value": value,
                "case_sensitive": c.case_sensitive,
            }
        )
    values: dict[str, Any] = {"name": rule.name, "active": rule.active, "conditions": conditions}
    if isinstance(rule.template, str):
        values["template_choice"] = rule.template
    else:
        values["template_choice"] = "custom"
        values["template.type"] = rule.template.type
        values["template.subject"] = rule.template.subject
        values["template.body"] = rule.template.body
    return values


def _rule_values_of_form(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        k: v for k, v in form.items() if k != "csrf" and not k.startswith("conditions.")
    }
    numbers = sorted(
        {int(k.split(".")[1]) for k in form if k.startswith("conditions.") and k.endswith(".field")}
    )
    values["conditions"] = [
        {
            "field": form.get(f"conditions.{n}.field", ""),
            "header": form.get(f"conditions.{n}.header", ""),
            "operator": form.get(f"conditions.{n}.operator", ""),
            "value": form.get(f"conditions.{n}.value", ""),
            "case_sensitive": bool(form.get(f"conditions.{n}.case_sensitive")),
        }
        for n in numbers
    ]
    return values


def _rule_page(
    request: Request,
    user: User,
    box: Mailbox,
    rule: AutoResponseRule | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    config = config_of(admin_of(request).store.state())
    named = {
        t["name"]: config.templates[t["name"]].model_dump(include={"type", "subject", "body"})
        for t in grids.templates_json(config, box.organization)
    }
    return page(
        request,
        "rule.html",
        status_code=status_code,
        user=user,
        box=box,
        rule=rule,
        v=values,
        errors=errors or {},
        writable=user.may_change(box.organization),
        fields=FIELDS,
        named=named,
        message=request.query_params.get("message", ""),
    )


async def rule_form(request: Request) -> Response:
    admin = admin_of(request)
    user = current_user(request, admin)
    rule_id = request.path_params.get("rule_id")
    box = mailbox_for(admin, user, request.path_params["mailbox_id"], write=request.method == "POST")
    rule = next((r for r in box.rules if r.id == rule_id), None)
    if rule_id is not None and rule is None:
        raise HTTPException(404, "no such rule")
    if request.method == "GET":
        return _rule_page(request, user, box, rule, _rule_values(rule))
    form = await checked_form(request)
    state = admin.store.state()
    try:
        changes, saved_id = _prepare_rule(state, user, box, rule, form)
    except FormError as exc:
        return _rule_page(request, user, box, rule, _rule_values_of_form(form), exc.errors, 400)
    await publish(admin, changes, user)
    return back(f"/mailboxes/{box.id}/rules", f"Rule {saved_id} saved" if changes else "No changes")


def _prepare_rule(
    state: ConfigState, user: User, box: Mailbox, old: AutoResponseRule | None, form: FormData
) -> tuple[list[Change], str]:
    name = str(form.get("name", "")).strip()
    rule_id = old.id if old is not None else forms.rule_id_for(name, {r.id for r in box.rules})
    position = max((r.position for r in box.rules), default=0) + 1
    rule_doc = forms.rule_document(form, old, rule_id, position)
    rules = [r.model_dump(mode="json", exclude_none=True) for r in box.rules]
    if old is None:
        rules.append(rule_doc)
        rule_index = len(rules) - 1
    else:
        rule_index = [r.id for r in box.rules].index(old.id)
        rules[rule_index] = rule_doc
    document, index = _with_rules(state, box, rules)
    required = {"name": name}
    save_as = str(form.get("template_name", "")).strip()
    after = None
    if form.get("save_as_template"):
        required["template_name"] = save_as
        if rule_doc["template"] and not isinstance(rule_doc["template"], dict):
            raise FormError({"save_as_template": "choose Custom to save the response as a template"})

        def after(config: MailroomConfig) -> MailroomConfig:
            try:
                return configuration.save_as_template(config, box.id, rule_id, save_as)
            except ConfigError as exc:
                raise FormError({"template_name": str(exc)}) from None

    changes = forms.prepare(document, state, utcnow(), user.name, index, rule_index, required, after)
    return changes, rule_id


routes = [
    Route("/mailboxes/{mailbox_id}/rules", rules_grid),
    Route("/mailboxes/{mailbox_id}/rules/new", rule_form, methods=["GET", "POST"]),
    Route("/mailboxes/{mailbox_id}/rules/{rule_id}", rule_form, methods=["GET", "POST"]),
    Route("/mailboxes/{mailbox_id}/rules/{rule_id}/{action:str}", rule_action, methods=["POST"]),
]
