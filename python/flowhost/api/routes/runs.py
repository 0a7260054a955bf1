"""`/api/runs`: the run list (filters, keyset paging), a run with its steps, awaits, events and
state (now or as of an event), and starting and controlling runs.

Starting goes through `start_run` and control through `flowhost.engine.control`, each in one
transaction, as the CLI does; their errors become statuses (flowhost.api.errors), with these
exceptions: a value of the body that names nothing (an unknown flow to start, a step to replay
from that the flow lacks) is a 422 about that value, and a run whose flow this project no
longer defines cannot be restarted, replayed or retried (409).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import AwareDatetime

from flowhost.api.limits import require_json
from flowhost.api.models import (
    AwaitInfo,
    AwaitList,
    Canceled,
    CancelRequest,
    EventInfo,
    EventPage,
    Migrated,
    MigrateRequest,
    ParkedList,
    ParkedRun,
    Replayed,
    ReplayRequest,
    Restarted,
    Retried,
    RunDetail,
    RunPage,
    RunState,
    RunStatus,
    RunSummary,
    Started,
    StartRequest,
    StepState,
)
from flowhost.api.paging import BadCursor, decode_cursor, encode_cursor
from flowhost.api.routes.common import (
    API_ACTOR,
    CONFLICT,
    INVALID,
    NOT_FOUND,
    connection,
    invalid,
    project_of,
    public_url_of,
    transaction,
)
from flowhost.db.database import Connection
from flowhost.engine import control
from flowhost.engine.awaits import describe_await
from flowhost.engine.starting import start_run
from flowhost.errors import FlowNotFoundError, InvalidInputError, StepNotFoundError
from flowhost.store import awaits as await_store
from flowhost.store import reads, versions
from flowhost.store.events import events_of_run
from flowhost.store.state_history import state_at

router = APIRouter(prefix="/api/runs", tags=["runs"])
T = TypeVar("T")

MAX_PAGE = 1000
JSON_BODY = [Depends(require_json)]


def run_url(run_id: uuid.UUID) -> str:
    return f"{router.prefix}/{run_id}"


# -- reading ----------------------------------------------------------------------------------


@router.get("", response_model=RunPage, summary="Runs, newest first", responses=INVALID)
async def list_runs(
    request: Request,
    flow: Annotated[str | None, Query(description="only runs of this flow")] = None,
    status: Annotated[RunStatus | None, Query(description="only runs in this status")] = None,
    parent: Annotated[
        uuid.UUID | None, Query(description="only runs started by this run's steps")
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="created at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="created before")] = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> RunPage:
    try:
        after = None if cursor is None else decode_cursor(cursor)
    except BadCursor as exc:
        raise invalid("query", "cursor", str(exc)) from None
    where = reads.RunFilter(flow=flow, status=status, parent=parent, since=since, until=until)
    async with connection(request) as conn:
        rows = await reads.list_runs(conn, where=where, after=after, limit=limit)
    last = rows[-1] if len(rows) == limit else None
    return RunPage(
        items=[RunSummary(**row) for row in rows],
        next_cursor=None if last is None else encode_cursor((last["created_at"], last["id"])),
    )


@router.get(
    "/parked",
    response_model=ParkedList,
    summary="Live runs whose flow definition no live host serves",
    responses=INVALID,
)
async def parked_runs(
    request: Request,
    flow: Annotated[str | None, Query(description="only runs of this flow")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> ParkedList:
    project = project_of(request)
    async with connection(request) as conn:
        parked = await versions.parked_runs(
            conn, stale_after=project.settings.host_stale_after, flow=flow, limit=limit
        )
    return ParkedList(
        items=[
            ParkedRun(
                id=run.id,
                flow=run.flow,
                status=run.status,  # type: ignore[arg-type]
                definition_hash=run.definition_hash,
                since=run.since,
            )
            for run in parked
        ]
    )


@router.get(
    "/{run_id}",
    response_model=RunDetail,
    summary="One run, with its steps and awaits",
    responses={**NOT_FOUND, **INVALID},
)
async def get_run(request: Request, run_id: uuid.UUID) -> RunDetail:
    async with connection(request) as conn:
        run = await reads.get_run(conn, run_id)
        steps = await reads.steps_of_run(conn, run_id)
        awaits = await await_store.awaits_of_run(conn, run_id)
    public_url = public_url_of(request)
    return RunDetail(
        **run,
        steps=[StepState(**step) for step in steps],
        awaits=[AwaitInfo(**describe_await(row, public_url)) for row in awaits],
    )


@router.get(
    "/{run_id}/awaits",
    response_model=AwaitList,
    summary="A run's awaits, with webhook resolve URLs",
    responses={**NOT_FOUND, **INVALID},
)
async def run_awaits(request: Request, run_id: uuid.UUID) -> AwaitList:
    async with connection(request) as conn:
        await reads.get_run(conn, run_id)
        rows = await await_store.awaits_of_run(conn, run_id)
    public_url = public_url_of(request)
    return AwaitList(items=[AwaitInfo(**describe_await(row, public_url)) for row in rows])


@router.get(
    "/{run_id}/events",
    response_model=EventPage,
    summary="A run's events in order, a page at a time",
    responses={**NOT_FOUND, **INVALID},
)
async def run_events(
    request: Request,
    run_id: uuid.UUID,
    after: Annotated[int, Query(ge=0, description="only events with a greater id")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> EventPage:
    async with connection(request) as conn:
        await reads.get_run(conn, run_id)
        events = await events_of_run(conn, run_id, after=after, limit=limit)
    return EventPage(
        items=[
            EventInfo(id=e.id, type=e.type, step=e.step, attempt=e.attempt, ts=e.ts, data=e.data)
            for e in events
        ],
        next_after=events[-1].id if events else after,
        has_more=len(events) == limit,
    )


@router.get(
    "/{run_id}/state",
    response_model=RunState,
    summary="A run's state: now, or as it was after an event (time travel)",
    responses={**NOT_FOUND, **INVALID},
)
async def run_state(
    request: Request,
    run_id: uuid.UUID,
    at: Annotated[
        int | None, Query(ge=1, description="the state after this event (an event id)")
    ] = None,
) -> RunState:
    async with connection(request) as conn:
        await reads.get_run(conn, run_id)
        state = (
            await reads.state_of_run(conn, run_id)
            if at is None
            else await state_at(conn, run_id, at)
        )
    return RunState(run_id=run_id, at=at, state=state)


# -- starting and control ---------------------------------------------------------------------


@router.post(
    "",
    response_model=Started,
    status_code=201,
    summary="Start a run (201, Location of the run; 200 when a start key named an existing run)",
    dependencies=JSON_BODY,
    responses={200: {"model": Started, "description": "an existing run"}, **INVALID},
)
async def start(request: Request, response: Response, body: StartRequest) -> Started:
    project = project_of(request)
    try:
        flow = project.catalog.flow(body.flow)
    except FlowNotFoundError as exc:
        raise invalid("body", "flow", exc.message) from None
    async with transaction(request) as conn:
        started = await start_run(conn, flow, body.input, body.options())
    async with connection(request) as conn:
        run = await reads.get_run(conn, started.run_id)
        served = await _served(conn, request, started.run_id)
    response.headers["Location"] = run_url(started.run_id)
    if not started.created:
        response.status_code = 200
    return Started(
        id=started.run_id,
        flow=flow.name,
        status=run["status"],
        created=started.created,
        served=served,
    )


@router.post(
    "/migrate",
    response_model=Migrated,
    summary="Move live runs onto the flow definition the live hosts serve",
    dependencies=JSON_BODY,
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def migrate(request: Request, body: MigrateRequest) -> Migrated:
    project = project_of(request)
    try:
        async with transaction(request) as conn:
            migration = await versions.migrate_live_runs(
                conn,
                run_id=body.run_id,
                flow=body.flow,
                stale_after=project.settings.host_stale_after,
                to_hash=body.to,
                by=API_ACTOR,
            )
    except InvalidInputError as exc:
        # Which definitions can be adopted depends on the live hosts: a state, not a value.
        raise HTTPException(409, exc.message) from None
    if body.run_id is not None and migration.refused:
        missing = ", ".join(migration.refused[body.run_id])
        raise HTTPException(
            409,
            f"run {body.run_id} cannot move onto definition {migration.to_hash}: it lacks the "
            f"run's scheduled steps {missing}",
        )
    return Migrated(
        flow=migration.flow,
        to=migration.to_hash,
        migrated={str(k): v for k, v in migration.moved.items()},
        refused={str(k): v for k, v in migration.refused.items()},
    )


@router.post(
    "/{run_id}/cancel",
    response_model=Canceled,
    summary="Cancel a live run: no further step starts, running attempts are stopped",
    dependencies=JSON_BODY,
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def cancel(
    request: Request, run_id: uuid.UUID, body: CancelRequest | None = None
) -> Canceled:
    reason = None if body is None else body.reason
    async with transaction(request) as conn:
        canceled = await control.cancel_run(conn, run_id, by=API_ACTOR, reason=reason)
    return Canceled(
        id=canceled.run_id,
        previous_status=canceled.previous_status,  # type: ignore[arg-type]
        steps=canceled.steps,
    )


@router.post(
    "/{run_id}/restart",
    response_model=Restarted,
    status_code=201,
    summary="Start a new run with the run's input; a live old run is canceled",
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def restart(request: Request, response: Response, run_id: uuid.UUID) -> Restarted:
    project = project_of(request)
    restarted = await _control(
        request,
        lambda conn: control.restart_run(conn, run_id, project.catalog.flows, by=API_ACTOR),
    )
    response.headers["Location"] = run_url(restarted.run_id)
    return Restarted(
        id=restarted.run_id,
        restart_of=restarted.restart_of,
        canceled=restarted.canceled,
        served=await _served_now(request, restarted.run_id),
    )


@router.post(
    "/{run_id}/replay",
    response_model=Replayed,
    status_code=201,
    summary="Start a new run that reuses what the run recorded before a step, and runs that "
    "step again",
    dependencies=JSON_BODY,
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def replay(
    request: Request, response: Response, run_id: uuid.UUID, body: ReplayRequest
) -> Replayed:
    project = project_of(request)
    try:
        replayed = await _control(
            request,
            lambda conn: control.replay_run(
                conn, run_id, body.from_step, project.catalog.flows, by=API_ACTOR
            ),
        )
    except StepNotFoundError as exc:
        raise invalid("body", "from_step", exc.message) from None
    response.headers["Location"] = run_url(replayed.run_id)
    return Replayed(
        id=replayed.run_id,
        replay_of=replayed.replay_of,
        from_step=replayed.from_step,
        reused=replayed.reused,
        served=await _served_now(request, replayed.run_id),
    )


@router.post(
    "/{run_id}/retry",
    response_model=Retried,
    summary="Run a failed (or stalled) run's failed steps again",
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def retry(request: Request, run_id: uuid.UUID) -> Retried:
    project = project_of(request)
    retried = await _control(
        request, lambda conn: control.retry_run(conn, run_id, project.catalog.flows, by=API_ACTOR)
    )
    return Retried(
        id=retried.run_id,
        previous_status=retried.previous_status,  # type: ignore[arg-type]
        steps=retried.steps,
        unskipped=retried.unskipped,
        served=await _served_now(request, retried.run_id),
    )


async def _control(request: Request, action: Callable[[Connection], Awaitable[T]]) -> T:
    """A control action that sets a run going, in one transaction. A run of a flow the project
    does not define (any more) cannot be set going here: 409."""
    try:
        async with transaction(request) as conn:
            return await action(conn)
    except FlowNotFoundError as exc:
        raise HTTPException(409, exc.message) from None


async def _served(conn: Connection, request: Request, run_id: uuid.UUID) -> bool:
    """Whether a live host serves the run's flow definition (else the run waits for one)."""
    stale_after = project_of(request).settings.host_stale_after
    return await reads.run_is_served(conn, run_id, stale_after)


async def _served_now(request: Request, run_id: uuid.UUID) -> bool:
    async with connection(request) as conn:
        return await _served(conn, request, run_id)
