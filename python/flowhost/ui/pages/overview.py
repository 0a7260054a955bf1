"""`/`: the overview. Runs by status (flow_stats), runs started and ended over time
(run_activity), the latest failures, the queue, schedules with their tick lag and hosts. Every
figure comes from a stats table, an index or a small table: the page costs the same with a
million runs as with ten. (Parked runs are on the queues page: finding them reads every live
run, 30 ms and more with tens of thousands waiting.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowhost.api.routes.common import connection, project_of
from flowhost.store import dashboard, statistics
from flowhost.triggers import schedule_service
from flowhost.ui.auth import page
from flowhost.ui.charts import DEFAULT_WINDOW, WINDOWS, activity_chart, window_start
from flowhost.ui.rendering import render

STATUSES = ("queued", "running", "awaiting", "completed", "failed", "canceled", "stalled")
FAILURES = 8
SCHEDULES = 8


def flow_rows(project_flows: list[str], stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row per flow the project defines or that has runs, with its counts."""
    by_flow = {row["flow"]: row for row in stats}
    rows = []
    for name in sorted(set(project_flows) | by_flow.keys()):
        row = by_flow.get(name) or {}
        completed = int(row.get("completed") or 0)
        rows.append(
            {
                "flow": name,
                "defined": name in project_flows,
                "total": int(row.get("total") or 0),
                **{status: int(row.get(status) or 0) for status in STATUSES},
                "mean_ms": (row["total_duration_ms"] / completed) if completed else None,
                "last_run_at": row.get("last_run_at"),
            }
        )
    return rows


@page
async def overview(request: Request) -> Response:
    project = project_of(request)
    window = WINDOWS.get(request.query_params.get("window", ""), WINDOWS[DEFAULT_WINDOW])
    start = window_start(window, datetime.now(UTC))
    stale_after = project.settings.host_stale_after
    async with connection(request) as conn:
        stats = await statistics.flow_statistics(conn)
        activity = await dashboard.run_activity(conn, bucket=window.bucket, since=start)
        failures = await dashboard.recent_failures(conn, limit=FAILURES)
        queue = await dashboard.queue_depth(conn)
        schedules = await schedule_service.list_schedules(conn, status="active", limit=100)
        hosts = await dashboard.list_hosts(conn, stale_after=stale_after)
    flows = flow_rows(sorted(project.catalog.flows), stats)
    upcoming = sorted(
        (s for s in schedules if s.enabled and s.next_fire is not None),
        key=lambda s: s.next_fire or start,
    )[:SCHEDULES]
    lags = [s.last_lag_ms for s in schedules if s.last_lag_ms is not None]
    return render(
        request,
        "overview.html",
        {
            "section": "overview",
            "title": "Overview",
            "totals": {status: sum(row[status] for row in flows) for status in STATUSES},
            "total_runs": sum(row["total"] for row in flows),
            "statuses": STATUSES,
            "flows": flows,
            "chart": activity_chart(window, start, activity),
            "window": window,
            "windows": list(WINDOWS.values()),
            "failures": failures,
            "queue": queue,
            "queued_jobs": sum(row["jobs"] for row in queue if row["status"] == "queued"),
            "picked_jobs": sum(row["jobs"] for row in queue if row["status"] == "picked"),
            "schedules": upcoming,
            "schedule_count": len(schedules),
            "worst_lag_ms": max(lags) if lags else None,
            "live_hosts": sum(1 for h in hosts if h["live"]),
        },
    )


routes = [Route("/", overview, methods=["GET"])]
