"""`/runs/{id}`: one run, live. Its steps (and the flow's graph coloured by them), its
timeline of events (logs, state changes, emits, awaits), its state now or as of any event,
its awaits with buttons that resolve them, its child runs and the processes running its steps
on this host, and the controls (cancel, retry, restart, replay from a step).

The page reads what the API's run routes read. Its script follows the run's event stream
(`/api/runs/{id}/stream`): each batch of events adds the new timeline rows
(`/runs/{id}/timeline?after=N`, rendered by the same template) and refreshes the other parts.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowhost.api.routes.common import connection, project_of, public_url_of
from flowhost.engine.awaits import WEBHOOK_PATH, describe_await
from flowhost.errors import RunNotFoundError
from flowhost.store import awaits as await_store
from flowhost.store import reads
from flowhost.store.events import events_of_run
from flowhost.ui import graph, timeline
from flowhost.ui.auth import page
from flowhost.ui.params import whole_number
from flowhost.ui.rendering import render

TIMELINE_PAGE = 1000
CHILDREN = 20


def run_id_of(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["run_id"])
    except ValueError:
        raise RunNotFoundError(f"no run {request.path_params['run_id']!r}") from None


def awaits_view(rows: list[dict[str, Any]], public_url: str | None) -> list[dict[str, Any]]:
    """Awaits as the API describes them, plus what the page's resolve buttons need: the path
    of a webhook await's URL (the button posts to this same server), an event await's match."""
    found = []
    for row in rows:
        described = describe_await(row, public_url)
        token = row["token"]
        described["path"] = None if token is None else WEBHOOK_PATH + token
        described["match"] = row["match"] or {}
        found.append(described)
    return found


def processes_of(request: Request, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """This host's children running a step of the run now (none when the app serves alone)."""
    source = getattr(request.app.state, "processes", None)
    if source is None:
        return []
    return [p for p in source() if p["run_id"] == str(run_id)]


@page
async def run_page(request: Request) -> Response:
    run_id = run_id_of(request)
    project = project_of(request)
    parts_only = request.query_params.get("parts") == "1"
    after = whole_number(request, "after")
    async with connection(request) as conn:
        run = await reads.get_run(conn, run_id)
        steps = await reads.steps_of_run(conn, run_id)
        awaits = await await_store.awaits_of_run(conn, run_id)
        state = await reads.state_of_run(conn, run_id)
        children = await reads.list_runs(conn, where=reads.RunFilter(parent=run_id), limit=CHILDREN)
        served = await reads.hosts_serving(
            conn,
            run["flow"],
            run["definition_hash"],
            stale_after=project.settings.host_stale_after,
        )
        events = (
            []
            if parts_only
            else await events_of_run(conn, run_id, after=after, limit=TIMELINE_PAGE)
        )
    flow = project.catalog.flows.get(run["flow"])
    rows = [timeline.row(event) for event in events]
    return render(
        request,
        "run.html",
        {
            "section": "runs",
            "title": f"Run {str(run_id)[:8]}",
            "run": run,
            "steps": steps,
            "step_status": {step["name"]: step["status"] for step in steps},
            "graph": None if flow is None else graph.layout(flow),
            "current_definition": flow is not None and flow.hash == run["definition_hash"],
            "defined": flow is not None,
            "awaits": awaits_view(awaits, public_url_of(request)),
            "state": state,
            "children": children,
            "served": served > 0,
            "processes": processes_of(request, run_id),
            "rows": rows,
            "after": after,
            "last_event": rows[-1].id if rows else after,
            "more": len(rows) == TIMELINE_PAGE,
            "event_types": timeline.RUN_EVENT_TYPES,
            "live": run["status"] in reads.LIVE_STATUSES,
            "replayable": [step["name"] for step in steps if step["started_at"] is not None],
        },
    )


@page
async def timeline_rows(request: Request) -> Response:
    """Timeline rows after event `after` (the page's script adds those it lacks)."""
    run_id = run_id_of(request)
    after = whole_number(request, "after")
    async with connection(request) as conn:
        await reads.get_run(conn, run_id)
        events = await events_of_run(conn, run_id, after=after, limit=TIMELINE_PAGE)
    return render(
        request,
        "timeline_rows.html",
        {"rows": [timeline.row(event) for event in events], "run_id": run_id},
    )


routes = [
    Route("/runs/{run_id}", run_page, methods=["GET"]),
    Route("/runs/{run_id}/timeline", timeline_rows, methods=["GET"]),
]
