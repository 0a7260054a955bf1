"""`/runs`: the run list, newest first, with filters (flow, status, creation time, parent run),
search by run id (a prefix is enough) and keyset paging, through the queries the API's run list
uses (`reads.list_runs`, `encode_cursor`): every page is an index range, deep or not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from flowhost.api.paging import BadCursor, decode_cursor, encode_cursor
from flowhost.api.routes.common import connection, project_of
from flowhost.store import reads, statistics
from flowhost.ui.auth import page
from flowhost.ui.rendering import render, secure

PAGE = 50
STATUSES = ("queued", "running", "awaiting", "completed", "failed", "canceled", "stalled")
CREATED_WITHIN = {
    "1h": ("last hour", timedelta(hours=1)),
    "24h": ("last 24 hours", timedelta(hours=24)),
    "7d": ("last 7 days", timedelta(days=7)),
    "30d": ("last 30 days", timedelta(days=30)),
}
FILTERS = ("flow", "status", "within", "parent")


def filters_of(request: Request) -> tuple[dict[str, str], list[str]]:
    """The page's filters as given (known values only) and what was wrong with the others."""
    given = {k: request.query_params.get(k, "").strip() for k in FILTERS}
    problems = []
    if given["status"] and given["status"] not in STATUSES:
        problems.append(f"unknown status {given['status']!r}")
        given["status"] = ""
    if given["within"] and given["within"] not in CREATED_WITHIN:
        problems.append(f"unknown time range {given['within']!r}")
        given["within"] = ""
    if given["parent"]:
        try:
            uuid.UUID(given["parent"])
        except ValueError:
            problems.append("the parent must be a run id")
            given["parent"] = ""
    return {k: v for k, v in given.items() if v}, problems


def run_filter(given: dict[str, str]) -> reads.RunFilter:
    within = CREATED_WITHIN.get(given.get("within", ""))
    return reads.RunFilter(
        flow=given.get("flow"),
        status=given.get("status"),
        parent=uuid.UUID(given["parent"]) if "parent" in given else None,
        since=datetime.now(UTC) - within[1] if within else None,
    )


async def flow_names(request: Request) -> list[str]:
    """Flows to filter by: those the project defines and those with runs."""
    async with connection(request) as conn:
        stats = await statistics.flow_statistics(conn)
    return sorted(set(project_of(request).catalog.flows) | {row["flow"] for row in stats})


async def _search(request: Request, text: str) -> tuple[list[dict[str, Any]], Response | None]:
    """Runs whose id starts with `text`; straight to the run when there is one."""
    async with connection(request) as conn:
        rows = await reads.runs_by_id_prefix(conn, text, limit=PAGE)
    if len(rows) == 1:
        return rows, secure(RedirectResponse(f"/runs/{rows[0]['id']}", status_code=303))
    return rows, None


@page
async def runs_page(request: Request) -> Response:
    given, problems = filters_of(request)
    text = request.query_params.get("q", "").strip()
    cursor = request.query_params.get("cursor")
    rows: list[dict[str, Any]] = []
    next_cursor = None
    if text:
        if reads.id_prefix_range(text) is None:
            problems.append(f"{text!r} is not a run id (or the start of one)")
        else:
            rows, jump = await _search(request, text)
            if jump is not None:
                return jump
    else:
        try:
            after = None if cursor is None else decode_cursor(cursor)
        except BadCursor as exc:
            problems.append(str(exc))
            after = None
        async with connection(request) as conn:
            rows = await reads.list_runs(conn, where=run_filter(given), after=after, limit=PAGE)
        if len(rows) == PAGE:
            last = rows[-1]
            next_cursor = encode_cursor((last["created_at"], last["id"]))
    stream = {k: v for k, v in given.items() if k in ("flow", "status")}
    return render(
        request,
        "runs.html",
        {
            "section": "runs",
            "title": "Runs",
            "runs": rows,
            "filters": given,
            "search": text,
            "problems": problems,
            "flows": await flow_names(request),
            "statuses": STATUSES,
            "within": CREATED_WITHIN,
            "first_url": "/runs" + ("?" + urlencode(given) if given else ""),
            "next_url": None
            if next_cursor is None
            else "/runs?" + urlencode({**given, "cursor": next_cursor}),
            "paged": cursor is not None,
            "stream_url": "/api/stream" + ("?" + urlencode(stream) if stream else ""),
        },
    )


routes = [Route("/runs", runs_page, methods=["GET"])]
