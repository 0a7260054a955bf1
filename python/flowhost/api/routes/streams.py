"""Server-Sent Events: `/api/runs/{id}/stream` (one run's events) and `/api/stream` (run
status changes of every run), resumable with `Last-Event-ID` (or `?after=`).

Each frame is `id: <event id>`, `event: <type>`, `data: <JSON>`; a comment every HEARTBEAT
seconds keeps idle connections (and proxies) open. A run's stream ends after the run's last
events with an `end` event (no id, so a resume still starts from the last real one); asked
again for a run that is over with nothing new, it answers 204, which tells an EventSource to
stop reconnecting. The streams are fed by the process's one fan-out (flowhost.realtime).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from flowhost.api.models import RunStatus
from flowhost.api.routes.common import INVALID, NOT_FOUND, connection, invalid, project_of
from flowhost.db.queries import QUERIES
from flowhost.realtime.fanout import TERMINAL, Fanout, StreamEvent
from flowhost.realtime.follow import follow_changes, follow_run, run_status
from flowhost.store import reads

router = APIRouter(prefix="/api", tags=["streams"])

HEARTBEAT = 15.0
# How long an EventSource waits before it reconnects after a dropped connection (ms).
RETRY_MS = 2000
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and the like must not buffer the stream.
    "X-Accel-Buffering": "no",
}
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "an event stream (`text/event-stream`): `id`, `event` (the event type) "
        "and `data` (the event as JSON) per event",
        "content": {"text/event-stream": {}},
    }
}


def fanout_of(request: Request) -> Fanout:
    fanout: Fanout = request.app.state.realtime
    return fanout


def heartbeat_of(request: Request) -> float:
    return float(getattr(request.app.state, "stream_heartbeat", HEARTBEAT))


def resume_point(last_event_id: str | None, after: int | None) -> int | None:
    """Where a stream resumes: the `Last-Event-ID` header (what an EventSource sends when it
    reconnects) wins over `?after=`."""
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isdigit() or len(text) > 19:
            raise invalid("header", "last-event-id", "must be an event id (a whole number)")
        return int(text)
    return after


def end_frame(run_id: uuid.UUID, status: str | None) -> str:
    # No id: a resume still starts after the last real event.
    return f"event: end\ndata: {json.dumps({'run_id': str(run_id), 'status': status})}\n\n"


def frames(batch: list[StreamEvent]) -> str:
    return "".join(event.sse for event in batch) if batch else ": keepalive\n\n"


@router.get(
    "/runs/{run_id}/stream",
    summary="A run's events as Server-Sent Events, live, until the run is over",
    response_class=StreamingResponse,
    responses={
        **SSE_RESPONSE,
        204: {"description": "the run is over and nothing is new"},
        **NOT_FOUND,
        **INVALID,
    },
)
async def run_stream(
    request: Request,
    run_id: uuid.UUID,
    after: Annotated[
        int | None, Query(ge=0, description="only events with a greater id (default: all)")
    ] = None,
    last_event_id: Annotated[str | None, Header(description="resume after this event")] = None,
) -> Response:
    start = resume_point(last_event_id, after) or 0
    async with connection(request) as conn:
        await reads.get_run(conn, run_id)  # 404 when there is no such run
        cursor = await conn.execute(
            QUERIES["run_has_events_after"], {"run_id": run_id, "after": start}
        )
        more = await cursor.fetchone()
    database = project_of(request).database
    if start > 0 and not (more and more["more"]):
        status = await run_status(database, run_id)
        if status in TERMINAL:
            return Response(status_code=204)
    fanout = fanout_of(request)
    heartbeat = heartbeat_of(request)

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n: run {run_id}\n\n"
        live = False
        status = None
        async with contextlib.aclosing(
            follow_run(fanout, database, run_id, after=start, heartbeat=heartbeat)
        ) as events:
            async for batch in events:
                if not batch and not live:
                    # Subscribed and the backlog sent: from here on nothing committed is missed.
                    live = True
                    yield ": live\n\n"
                    continue
                for event in batch:
                    status = event.status or status
                if status in TERMINAL:
                    # The run's last events: the stream ends with them, in the same write.
                    yield frames(batch) + end_frame(run_id, status)
                    return
                yield frames(batch)
        # Over before the events after `after`, or the server is stopping.
        status = await run_status(database, run_id)
        if status in TERMINAL:
            yield end_frame(run_id, status)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=STREAM_HEADERS)


@router.get(
    "/stream",
    summary="Run status changes (flow.* events) of every run, as Server-Sent Events",
    response_class=StreamingResponse,
    responses={**SSE_RESPONSE, **INVALID},
)
async def changes_stream(
    request: Request,
    flow: Annotated[list[str] | None, Query(description="only runs of these flows")] = None,
    status: Annotated[
        list[RunStatus] | None,
        Query(description="only changes that leave a run in one of these statuses"),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, description="first the changes after this event id")
    ] = None,
    last_event_id: Annotated[str | None, Header(description="resume after this event")] = None,
) -> Response:
    start = resume_point(last_event_id, after)
    flows = frozenset(flow or ())
    statuses = frozenset(str(s) for s in status or ())

    def accepts(event: StreamEvent) -> bool:
        return (not flows or event.flow in flows) and (not statuses or event.status in statuses)

    fanout = fanout_of(request)
    database = project_of(request).database
    heartbeat = heartbeat_of(request)

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n: run status changes\n\n"
        live = False
        async with contextlib.aclosing(
            follow_changes(
                fanout,
                database,
                after=start,
                accepts=accepts if flows or statuses else None,
                heartbeat=heartbeat,
            )
        ) as events:
            async for batch in events:
                if not batch and not live:
                    # Subscribed and the backlog sent: from here on nothing committed is missed.
                    live = True
                    yield ": live\n\n"
                    continue
                yield frames(batch)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=STREAM_HEADERS)
