"""`/flows`: the flows this project defines with their figures, and `/flows/{name}`: one
flow's step graph (awaits shown), steps, statistics, runs over time, latest runs, the triggers
its entry step subscribes it to, and a form that starts a run (through `POST /api/runs`)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowhost.api.routes.common import connection, project_of
from flowhost.api.routes.flows import relative
from flowhost.errors import FlowNotFoundError
from flowhost.store import dashboard, reads, statistics
from flowhost.ui import graph
from flowhost.ui.auth import page
from flowhost.ui.charts import WINDOWS, activity_chart, window_start
from flowhost.ui.pages.overview import flow_rows
from flowhost.ui.rendering import render

LATEST_RUNS = 10


@page
async def flows_page(request: Request) -> Response:
    project = project_of(request)
    stale_after = project.settings.host_stale_after
    async with connection(request) as conn:
        stats = await statistics.flow_statistics(conn)
        hosts = {
            name: await reads.hosts_serving(conn, name, flow.hash, stale_after=stale_after)
            for name, flow in project.catalog.flows.items()
        }
    root = project.catalog.functions_dir
    return render(
        request,
        "flows.html",
        {
            "section": "flows",
            "title": "Flows",
            "rows": flow_rows(sorted(project.catalog.flows), stats),
            "flows": project.catalog.flows,
            "hosts": hosts,
            "problems": [
                {"file": relative(p.file, root), "line": p.line, "message": p.message}
                for p in project.catalog.problems
            ],
        },
    )


@page
async def flow_page(request: Request) -> Response:
    project = project_of(request)
    name = request.path_params["name"]
    flow = project.catalog.flows.get(name)
    if flow is None:
        raise FlowNotFoundError(f"this project defines no flow {name!r}")
    window = WINDOWS["24h"]
    start = window_start(window, datetime.now(UTC))
    async with connection(request) as conn:
        found = await statistics.flow_statistics(conn, name)
        durations = await statistics.duration_percentiles(conn, name)
        steps = {row["step"]: row for row in await statistics.step_statistics(conn, name)}
        runs = await reads.list_runs(conn, flow=name, limit=LATEST_RUNS)
        activity = await dashboard.run_activity(conn, bucket=window.bucket, since=start, flow=name)
        hosts = await reads.hosts_serving(
            conn, name, flow.hash, stale_after=project.settings.host_stale_after
        )
    entry = flow.steps[flow.entry]
    root = project.catalog.functions_dir
    return render(
        request,
        "flow.html",
        {
            "section": "flows",
            "title": f"Flow {name}",
            "flow": flow,
            "graph": graph.layout(flow),
            "steps": [
                {
                    "definition": step,
                    "file": relative(step.file, root),
                    "awaits": graph.step_awaits(step),
                    "stats": steps.get(step.name),
                }
                for step in sorted(flow.steps.values(), key=lambda s: (not s.entry, s.name))
            ],
            "stats": flow_rows([name], found)[0],
            "durations": durations,
            "runs": runs,
            "chart": activity_chart(window, start, activity),
            "window": window,
            "hosts": hosts,
            "limits": flow.limits.to_json(),
            "triggers": entry.triggers.subscribe if entry.triggers else (),
        },
    )


routes = [
    Route("/flows", flows_page, methods=["GET"]),
    Route("/flows/{name}", flow_page, methods=["GET"]),
]
