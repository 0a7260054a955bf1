"""`/api/schedules`: schedule triggers at runtime (docs/schedules.md) through
flowhost.triggers.schedule_service: list, read, next fire times, last fires and their lag,
edit, enable and disable. Schedules are made, retired and subscribed as triggers of type
`schedule` (`/api/triggers`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from flowhost.api.limits import require_json
from flowhost.api.routes.common import INVALID, connection, documented, transaction
from flowhost.api.schedule_models import (
    NextFires,
    ScheduleFireInfo,
    ScheduleInfo,
    ScheduleLag,
    SchedulePage,
    ToggleSchedule,
    UpdateSchedule,
)
from flowhost.triggers import schedule_service as schedules
from flowhost.triggers.schedule_service import ScheduleView

router = APIRouter(prefix="/api/schedules", tags=["schedules"])
JSON_BODY = [Depends(require_json)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented("no schedule trigger of that name")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: documented("the trigger's version changed meanwhile, or it is retired")
}


def _info(view: ScheduleView) -> ScheduleInfo:
    return ScheduleInfo(**view.to_json())


@router.get("", response_model=SchedulePage, summary="Schedules by name", responses=INVALID)
async def list_schedules(
    request: Request,
    status: Annotated[str | None, Query(description="only triggers in this status")] = None,
    after: Annotated[str | None, Query(description="`next_after` of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=schedules.MAX_LIST)] = 100,
) -> SchedulePage:
    async with connection(request) as conn:
        views = await schedules.list_schedules(conn, status=status, after=after, limit=limit)
    return SchedulePage(
        items=[_info(view) for view in views],
        next_after=views[-1].name if len(views) == limit else None,
    )


@router.get(
    "/{name}", response_model=ScheduleInfo, summary="A schedule and its state", responses=NOT_FOUND
)
async def get_schedule(request: Request, name: str) -> ScheduleInfo:
    async with connection(request) as conn:
        return _info(await schedules.get_schedule(conn, name))


@router.get(
    "/{name}/next",
    response_model=NextFires,
    summary="The schedule's next fire times (from its cron, in its zone)",
    responses={**NOT_FOUND, **INVALID},
)
async def next_fires(
    request: Request,
    name: str,
    count: Annotated[int, Query(ge=1, le=schedules.MAX_NEXT)] = 10,
    after: Annotated[datetime | None, Query(description="default: now")] = None,
) -> NextFires:
    async with connection(request) as conn:
        view = await schedules.get_schedule(conn, name)
        times = await schedules.next_fires(conn, name, count, after=after)
    return NextFires(name=name, timezone=view.timezone, times=times)


@router.get(
    "/{name}/fires",
    response_model=list[ScheduleFireInfo],
    summary="The schedule's last fires, newest first, with their lag and runs",
    responses=NOT_FOUND,
)
async def last_fires(
    request: Request,
    name: str,
    limit: Annotated[int, Query(ge=1, le=schedules.MAX_FIRES)] = 20,
) -> list[ScheduleFireInfo]:
    async with connection(request) as conn:
        fires = await schedules.last_fires(conn, name, limit)
    return [ScheduleFireInfo(**fire.to_json()) for fire in fires]


@router.get(
    "/{name}/lag",
    response_model=ScheduleLag,
    summary="p50, p99 and max lag (ms) of the schedule's last on-time fires",
    responses=NOT_FOUND,
)
async def lag(
    request: Request,
    name: str,
    last: Annotated[int, Query(ge=1, le=100_000)] = schedules.LAG_WINDOW,
) -> ScheduleLag:
    async with connection(request) as conn:
        return ScheduleLag(**await schedules.lag(conn, name, last=last))


@router.patch(
    "/{name}",
    response_model=ScheduleInfo,
    summary="Edit the schedule's cron, zone or policies (with the version read)",
    dependencies=JSON_BODY,
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def update_schedule(request: Request, name: str, body: UpdateSchedule) -> ScheduleInfo:
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    async with transaction(request) as conn:
        view = await schedules.update_schedule(conn, name, version=body.version, **changes)
    return _info(view)


@router.post(
    "/{name}/enable",
    response_model=ScheduleInfo,
    summary="Enable the schedule: it fires from its next planned time",
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def enable(
    request: Request, name: str, body: Annotated[ToggleSchedule | None, Body()] = None
) -> ScheduleInfo:
    async with transaction(request) as conn:
        view = await schedules.enable_schedule(
            conn, name, version=None if body is None else body.version
        )
    return _info(view)


@router.post(
    "/{name}/disable",
    response_model=ScheduleInfo,
    summary="Disable the schedule: it fires no more (queued fires are dropped)",
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def disable(
    request: Request, name: str, body: Annotated[ToggleSchedule | None, Body()] = None
) -> ScheduleInfo:
    async with transaction(request) as conn:
        view = await schedules.disable_schedule(
            conn, name, version=None if body is None else body.version
        )
    return _info(view)
