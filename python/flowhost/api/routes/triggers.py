"""`/api/triggers`: the trigger registry over HTTP (list, read, stream, create, update, retire,
subscribe, fire, replay), each change in one transaction through flowhost.triggers.service.

The service's errors become statuses as `service.HTTP_STATUS` says (flowhost.api.errors holds
the same table): 404 unknown trigger or subscription, 409 version mismatch / retired / a
config-made subscription, 422 a bad declaration or input, with `errors` pointing into the body.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from flowhost.api.limits import require_json
from flowhost.api.routes.common import (
    INVALID,
    connection,
    documented,
    project_of,
    transaction,
)
from flowhost.api.trigger_models import (
    CreateTrigger,
    FireInfo,
    FireTrigger,
    ReplayInfo,
    ReplayTrigger,
    RetireTrigger,
    SubscribeFlow,
    TriggerEventInfo,
    TriggerEventPage,
    TriggerInfo,
    TriggerPage,
    TriggerStatus,
    UpdateTrigger,
)
from flowhost.errors import TriggerConfigError, TriggerInputError
from flowhost.triggers import service
from flowhost.triggers.declarations import TriggerSpec

router = APIRouter(prefix="/api/triggers", tags=["triggers"])
JSON_BODY = [Depends(require_json)]
API_SOURCE = "api"

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented("no such trigger (or subscription)")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: documented(
        "the version changed meanwhile (`version` is the current one), the trigger is "
        "retired, or a function config owns the subscription"
    )
}


def trigger_url(name: str) -> str:
    return f"{router.prefix}/{name}"


def _info(view: Any) -> TriggerInfo:
    return TriggerInfo(**view.to_json())


@router.get("", response_model=TriggerPage, summary="Triggers by name", responses=INVALID)
async def list_triggers(
    request: Request,
    type: Annotated[str | None, Query(description="only triggers of this type")] = None,
    status: Annotated[TriggerStatus | None, Query(description="only in this status")] = None,
    after: Annotated[str | None, Query(description="`next_after` of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIST)] = 100,
) -> TriggerPage:
    async with connection(request) as conn:
        views = await service.list_triggers(
            conn, type=type, status=status, after=after, limit=limit
        )
    return TriggerPage(
        items=[_info(view) for view in views],
        next_after=views[-1].name if len(views) == limit else None,
    )


@router.post(
    "",
    response_model=TriggerInfo,
    status_code=201,
    summary="Register a trigger",
    dependencies=JSON_BODY,
    responses={**INVALID, **CONFLICT},
)
async def create_trigger(request: Request, body: CreateTrigger, response: Response) -> TriggerInfo:
    spec = TriggerSpec(body.name, body.type, body.config, body.displayName, body.description)
    async with transaction(request) as conn:
        view = await service.create_trigger(conn, spec, subscribe=body.subscribe)
    response.headers["Location"] = trigger_url(view.name)
    return _info(view)


@router.get(
    "/{name}",
    response_model=TriggerInfo,
    summary="A trigger, with its subscriptions and figures",
    responses=NOT_FOUND,
)
async def get_trigger(request: Request, name: str) -> TriggerInfo:
    async with connection(request) as conn:
        return _info(await service.get_trigger(conn, name))


@router.get(
    "/{name}/events",
    response_model=TriggerEventPage,
    summary="A trigger's stream, oldest first, a page at a time",
    responses={**NOT_FOUND, **INVALID},
)
async def trigger_events(
    request: Request,
    name: str,
    after: Annotated[int, Query(ge=0, description="only events with a greater id")] = 0,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIST)] = 100,
    type: Annotated[list[str] | None, Query(description="only events of these types")] = None,
) -> TriggerEventPage:
    async with connection(request) as conn:
        events = await service.trigger_events(conn, name, after=after, limit=limit, types=type)
    return TriggerEventPage(
        items=[TriggerEventInfo(id=e.id, type=e.type, ts=e.ts, data=e.data) for e in events],
        next_after=events[-1].id if events else after,
        has_more=len(events) == limit,
    )


@router.patch(
    "/{name}",
    response_model=TriggerInfo,
    summary="Change a trigger (optimistic: give the version you read)",
    dependencies=JSON_BODY,
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def update_trigger(request: Request, name: str, body: UpdateTrigger) -> TriggerInfo:
    given = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    for member, argument in (
        ("type", "type"),
        ("config", "config"),
        ("displayName", "display_name"),
        ("description", "description"),
        ("status", "status"),
    ):
        if member in given:
            changes[argument] = given[member]
    for required in ("type", "config", "status"):
        if changes.get(required, service.UNCHANGED) is None:
            raise TriggerConfigError(
                f"{required} cannot be null",
                errors=[{"pointer": f"/{required}", "message": "must not be null"}],
            )
    async with transaction(request) as conn:
        view = await service.update_trigger(conn, name, version=body.version, **changes)
    return _info(view)


@router.post(
    "/{name}/retire",
    response_model=TriggerInfo,
    summary="Retire a trigger: it fires no more",
    dependencies=JSON_BODY,
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def retire_trigger(
    request: Request, name: str, body: RetireTrigger | None = None
) -> TriggerInfo:
    body = body or RetireTrigger()
    async with transaction(request) as conn:
        view = await service.retire_trigger(conn, name, reason=body.reason, version=body.version)
    return _info(view)


@router.put(
    "/{name}/subscriptions/{flow}",
    response_model=TriggerInfo,
    summary="Subscribe a flow (or change its mode)",
    dependencies=JSON_BODY,
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def subscribe(
    request: Request, name: str, flow: str, body: SubscribeFlow | None = None
) -> TriggerInfo:
    mode = (body or SubscribeFlow()).mode
    async with transaction(request) as conn:
        return _info(await service.subscribe(conn, name, flow, mode=mode))


@router.delete(
    "/{name}/subscriptions/{flow}",
    response_model=TriggerInfo,
    summary="Unsubscribe a flow",
    responses={**NOT_FOUND, **CONFLICT},
)
async def unsubscribe(request: Request, name: str, flow: str) -> TriggerInfo:
    async with transaction(request) as conn:
        return _info(await service.unsubscribe(conn, name, flow))


@router.post(
    "/{name}/fire",
    response_model=FireInfo,
    status_code=201,
    summary="Fire a trigger: a run in each subscribed flow; the input is checked against "
    "the trigger's schema",
    dependencies=JSON_BODY,
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def fire(request: Request, name: str, body: FireTrigger | None = None) -> FireInfo:
    body = body or FireTrigger()
    project = project_of(request)
    try:
        async with transaction(request) as conn:
            fired = await service.fire_trigger(
                conn,
                name,
                body.input,
                source=API_SOURCE,
                flows=body.flows,
                served=lambda: project.catalog.flows,
            )
    except TriggerInputError as exc:
        # The schema's pointers point into the input: in the body, that is under /input.
        raise TriggerInputError(
            exc.message,
            trigger=name,
            errors=[{**e, "pointer": "/input" + e["pointer"]} for e in exc.errors],
        ) from None
    return FireInfo(**fired.to_json())


@router.post(
    "/{name}/replay",
    response_model=ReplayInfo,
    status_code=201,
    summary="Fire again the last N fires, or those of a time range, into chosen flows",
    dependencies=JSON_BODY,
    responses={**NOT_FOUND, **INVALID, **CONFLICT},
)
async def replay(request: Request, name: str, body: ReplayTrigger) -> ReplayInfo:
    project = project_of(request)
    async with transaction(request) as conn:
        replayed = await service.replay_trigger(
            conn,
            name,
            last=body.last,
            since=body.since,
            until=body.until,
            flows=body.flows,
            served=lambda: project.catalog.flows,
        )
    return ReplayInfo(**replayed.to_json())
