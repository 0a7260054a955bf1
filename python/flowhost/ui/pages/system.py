"""`/queues`: the job queue per entrypoint and status, flow control's waiting lists and the
runs parked on a definition no live host serves; `/workers`: the hosts sharing the database
and this process's own child processes (when it is a host: `flowhost dev`, `flowhost host
--http`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowhost.api.routes.common import connection, project_of
from flowhost.store import dashboard, versions
from flowhost.ui.auth import page
from flowhost.ui.rendering import render

PARKED = 100


@page
async def queues_page(request: Request) -> Response:
    stale_after = project_of(request).settings.host_stale_after
    async with connection(request) as conn:
        queue = await dashboard.queue_depth(conn)
        waiting = await dashboard.waiting_lists(conn)
        parked = await versions.parked_runs(conn, stale_after=stale_after, flow=None, limit=PARKED)
    return render(
        request,
        "queues.html",
        {
            "section": "queues",
            "title": "Queues",
            "queue": queue,
            "waiting": waiting,
            "parked": parked,
            "parked_limit": PARKED,
        },
    )


@page
async def workers_page(request: Request) -> Response:
    project = project_of(request)
    async with connection(request) as conn:
        hosts = await dashboard.list_hosts(conn, stale_after=project.settings.host_stale_after)
    source = getattr(request.app.state, "processes", None)
    return render(
        request,
        "workers.html",
        {
            "section": "workers",
            "title": "Workers",
            "hosts": hosts,
            "is_host": source is not None,
            "processes": [] if source is None else source(),
            "settings": project.settings,
        },
    )


routes = [
    Route("/queues", queues_page, methods=["GET"]),
    Route("/workers", workers_page, methods=["GET"]),
]
