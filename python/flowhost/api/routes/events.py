"""`POST /api/events`: publish events from outside, as plain JSON or as CloudEvents.

- A plain event is `{"name": ..., "payload": ...}` (`Content-Type: application/json`; any other
  type is a 415).
- A CloudEvent comes in any HTTP content mode (binary, structured, batched) and is recognised by
  `flowhost.cloudevents.content_mode`; its name is its `type`, its payload the event in the
  CloudEvents JSON format (`CloudEvent.as_event`). A malformed CloudEvent is answered with
  `CloudEventError.status` and names the attribute at fault.

Every event of a request is published (`publish`: event awaits resolved, event triggers fired)
in ONE transaction: a batch is all or nothing. The answer is 202 with what each event did.

Auth: the admin token, like all of /api. A sender that must not hold the admin token posts to a
webhook trigger instead (its own auth per trigger); see docs/api.md.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from flowhost._core import TriggerIndex
from flowhost.api.limits import JSON_MEDIA_TYPE, is_json, read_body
from flowhost.api.routes.common import INVALID, documented, project_of, transaction
from flowhost.api.trigger_models import (
    EventFailure,
    EventFire,
    EventOutcome,
    EventsAccepted,
    FiredRunInfo,
    PlainEvent,
)
from flowhost.cloudevents import CloudEvent, content_mode, parse_http
from flowhost.engine.await_resolution import publish
from flowhost.errors import EventNameError, InvalidInputError

router = APIRouter(prefix="/api/events", tags=["events"])
# Used only to check names (an empty index matches nothing, but refuses a malformed name).
_NAME_CHECK = TriggerIndex()

REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "a plain event, or CloudEvents in any content mode",
        "content": {
            "application/json": {"schema": PlainEvent.model_json_schema()},
            "application/cloudevents+json": {"schema": {"type": "object"}},
            "application/cloudevents-batch+json": {"schema": {"type": "array"}},
            "*/*": {"schema": {"description": "a CloudEvent in binary mode (ce-* headers)"}},
        },
    }
}


class EventRefused(InvalidInputError):
    """A value of the request is not valid (422 with `errors`)."""


@router.post(
    "",
    response_model=EventsAccepted,
    status_code=202,
    summary="Publish events: plain JSON or CloudEvents (binary, structured, batched)",
    openapi_extra=REQUEST_BODY,
    responses={**INVALID, 400: documented("not valid JSON, or not a valid CloudEvent")},
)
async def publish_events(request: Request) -> EventsAccepted:
    body = await read_body(request, request.app.state.project.settings.max_body_bytes)
    events = _cloud_events(request, body)
    named = (
        [(event.as_event(), event.id) for event in events]
        if events is not None
        else [(_plain_event(request, body), None)]
    )
    for position, ((name, _), _) in enumerate(named):
        _check_name(name, "/name" if events is None else _type_pointer(events, position))
    project = project_of(request)
    outcomes = []
    async with transaction(request) as conn:
        for (name, payload), event_id in named:
            published = await publish(
                conn, name, payload, flows=project.catalog.flows, triggers=project.event_triggers
            )
            outcomes.append(_outcome(name, event_id, published))
    return EventsAccepted(events=outcomes)


def _cloud_events(request: Request, body: bytes) -> list[CloudEvent] | None:
    headers = request.headers
    if content_mode(headers) is None:
        return None
    # A CloudEventError is answered with its status, naming the attribute (flowhost.api.errors).
    return parse_http(headers, body)


def _plain_event(request: Request, body: bytes) -> tuple[str, Any]:
    if not is_json(request.headers.get("content-type")):
        raise HTTPException(
            415,
            "the body must be a JSON event (Content-Type: application/json) or a CloudEvent",
            headers={"Accept": JSON_MEDIA_TYPE},
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"the request body is not valid JSON: {exc}") from None
    try:
        event = PlainEvent.model_validate(data)
    except ValidationError as exc:
        raise EventRefused(
            "the event is not valid",
            errors=[
                {"pointer": "".join(f"/{p}" for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from None
    return event.name, event.payload


def _type_pointer(events: list[CloudEvent], position: int) -> str:
    return f"/{position}/type" if len(events) > 1 else "/type"


def _check_name(name: str, pointer: str) -> None:
    try:
        _NAME_CHECK.match(name)
    except EventNameError as exc:
        raise EventRefused(
            f"not a flowhost event name: {exc}",
            errors=[{"pointer": pointer, "message": str(exc)}],
        ) from None


def _outcome(name: str, event_id: str | None, published: Any) -> EventOutcome:
    return EventOutcome(
        name=name,
        id=event_id,
        resolved=published.resolved,
        fired=[
            EventFire(
                trigger=fired.trigger,
                fireId=fired.fire_id,
                runs=[FiredRunInfo(flow=r.flow, runId=r.run_id) for r in fired.runs],
            )
            for fired in published.fires.fired
        ],
        failed=[
            EventFailure(trigger=failure.trigger, error=failure.error)
            for failure in published.fires.failed
        ],
    )
