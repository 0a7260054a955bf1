"""`/triggers`: the trigger registry. The list (by type and status, paged by name), a trigger's
page (declaration, subscriptions, figures, its fire history and other events, a form to fire
it, generated from its input's JSON Schema, and replay), and the forms that create and edit
triggers. Reads go through flowhost.triggers.service like the API's; changes are the API's
routes, called by the pages' script with the session."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowhost.api.routes.common import connection, project_of
from flowhost.store import triggers as trigger_store
from flowhost.triggers import service
from flowhost.triggers.declarations import REDACTED, STATUSES, TRIGGER_TYPES, redact
from flowhost.ui.auth import page
from flowhost.ui.rendering import render
from flowhost.ui.schema_form import form_fields

PAGE = 100
HISTORY = 30
# What a new trigger's config starts as, by type (docs/triggers.md).
CONFIG_EXAMPLES = {
    "manual": {"schema": {"type": "object", "properties": {}, "required": []}},
    "event": {"events": ["order.*"]},
    "webhook": {"auth": {"scheme": "github", "secret_env": "GITHUB_WEBHOOK_SECRET"}},
    "schedule": {"cron": "0 * * * *", "timezone": "UTC"},
}


@page
async def triggers_page(request: Request) -> Response:
    kind = request.query_params.get("type") or None
    status = request.query_params.get("status") or None
    after = request.query_params.get("after") or None
    problems = []
    if kind is not None and kind not in TRIGGER_TYPES:
        problems.append(f"unknown trigger type {kind!r}")
        kind = None
    if status is not None and status not in STATUSES:
        problems.append(f"unknown status {status!r}")
        status = None
    async with connection(request) as conn:
        views = await service.list_triggers(conn, type=kind, status=status, after=after, limit=PAGE)
    given = {k: v for k, v in (("type", kind), ("status", status)) if v}
    return render(
        request,
        "triggers.html",
        {
            "section": "triggers",
            "title": "Triggers",
            "triggers": views,
            "types": TRIGGER_TYPES,
            "statuses": STATUSES,
            "filters": given,
            "problems": problems,
            "next_url": "/triggers?" + urlencode({**given, "after": views[-1].name})
            if len(views) == PAGE
            else None,
        },
    )


@page
async def trigger_page(request: Request) -> Response:
    name = request.path_params["name"]
    project = project_of(request)
    async with connection(request) as conn:
        view = await service.get_trigger(conn, name)
        history = await trigger_store.latest_trigger_events(conn, name, limit=HISTORY)
    schema = view.config.get("schema")
    subscribed = {s.flow for s in view.subscriptions}
    return render(
        request,
        "trigger.html",
        {
            "section": "triggers",
            "title": f"Trigger {name}",
            "trigger": view,
            "config": redact(view.config),
            "schema": schema,
            "fields": form_fields(schema),
            "history": list(reversed(history)),
            "flows": sorted(project.catalog.flows),
            "unsubscribed": sorted(set(project.catalog.flows) - subscribed),
        },
    )


def _form(request: Request, context: dict[str, object]) -> Response:
    return render(
        request,
        "trigger_form.html",
        {
            "section": "triggers",
            "types": TRIGGER_TYPES,
            "examples": json.dumps(CONFIG_EXAMPLES),
            "flows": sorted(project_of(request).catalog.flows),
            "redacted": REDACTED,
            **context,
        },
    )


@page
async def new_trigger_page(request: Request) -> Response:
    return _form(
        request, {"title": "New trigger", "trigger": None, "config": CONFIG_EXAMPLES["manual"]}
    )


@page
async def edit_trigger_page(request: Request) -> Response:
    name = request.path_params["name"]
    async with connection(request) as conn:
        view = await service.get_trigger(conn, name)
    return _form(
        request, {"title": f"Edit trigger {name}", "trigger": view, "config": redact(view.config)}
    )


routes = [
    Route("/triggers", triggers_page, methods=["GET"]),
    # Before /triggers/{name}: "new" is the form, not a trigger.
    Route("/triggers/new", new_trigger_page, methods=["GET"]),
    Route("/triggers/{name}", trigger_page, methods=["GET"]),
    Route("/triggers/{name}/edit", edit_trigger_page, methods=["GET"]),
]
