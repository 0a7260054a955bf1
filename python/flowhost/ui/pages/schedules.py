"""`/schedules`: schedule triggers with their next fire, last fire and lag, switched on and off
from the page; `/schedules/{name}`: its next fire times, its last fires with their lag and
runs, lag percentiles, and a form for its cron, zone and policies. Through
flowhost.triggers.schedule_service, as the API's schedule routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowhost.api.routes.common import connection
from flowhost.triggers import schedule_service
from flowhost.triggers.schedule_config import CATCHUP_POLICIES, OVERLAP_POLICIES
from flowhost.ui.auth import page
from flowhost.ui.rendering import render

NEXT = 10
FIRES = 20


@page
async def schedules_page(request: Request) -> Response:
    after = request.query_params.get("after") or None
    async with connection(request) as conn:
        views = await schedule_service.list_schedules(
            conn, after=after, limit=schedule_service.MAX_LIST
        )
    return render(
        request,
        "schedules.html",
        {
            "section": "schedules",
            "title": "Schedules",
            "schedules": views,
            "next_url": f"/schedules?after={views[-1].name}"
            if len(views) == schedule_service.MAX_LIST
            else None,
        },
    )


@page
async def schedule_page(request: Request) -> Response:
    name = request.path_params["name"]
    async with connection(request) as conn:
        view = await schedule_service.get_schedule(conn, name)
        upcoming = (
            await schedule_service.next_fires(conn, name, NEXT)
            if view.enabled and view.status == "active"
            else []
        )
        fires = await schedule_service.last_fires(conn, name, FIRES)
        lag = await schedule_service.lag(conn, name)
    return render(
        request,
        "schedule.html",
        {
            "section": "schedules",
            "title": f"Schedule {name}",
            "schedule": view,
            "upcoming": upcoming,
            "fires": fires,
            "lag": lag,
            "overlaps": OVERLAP_POLICIES,
            "catchups": CATCHUP_POLICIES,
        },
    )


routes = [
    Route("/schedules", schedules_page, methods=["GET"]),
    Route("/schedules/{name}", schedule_page, methods=["GET"]),
]
