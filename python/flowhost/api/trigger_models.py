"""The JSON shapes of the trigger and event routes (OpenAPI models).

A trigger's members are spelled as in function configs' `triggers.define` and in
`flowhost trigger ... --json` (`displayName`, `totalFires`, ...): one shape for a trigger
wherever it is read or written, so the field errors of a declaration point at the same members
whether it came from a config or from this API.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from flowhost.api.models import Request
from flowhost.triggers.replay import MAX_REPLAY

TriggerStatus = Literal["active", "retired", "deprecated"]
Mode = Literal["auto", "manual"]


class Subscription(BaseModel):
    flow: str
    mode: Mode
    source: Literal["config", "api"] = Field(
        description="who made it: a function config or the API"
    )


class TriggerStats(BaseModel):
    totalFires: int
    lastFiredAt: datetime | None
    subscribers: int


class TriggerInfo(BaseModel):
    """A trigger: declaration (config with secrets redacted), status, subscriptions, figures."""

    name: str
    type: str
    status: TriggerStatus
    source: Literal["config", "api"]
    displayName: str | None
    description: str | None
    config: dict[str, Any] = Field(description="the type's config; secret values are `***`")
    declaredAt: str | None = Field(description="file:line of the function config declaring it")
    version: int = Field(description="bumped by each change; pass it back to update")
    registeredAt: datetime
    updatedAt: datetime
    retiredAt: datetime | None
    retiredReason: str | None
    subscriptions: list[Subscription]
    stats: TriggerStats


class TriggerPage(BaseModel):
    items: list[TriggerInfo]
    next_after: str | None = Field(description="pass as `after` for the next page; null: the last")


class TriggerEventInfo(BaseModel):
    id: int
    type: str = Field(description="trigger.registered, trigger.fired, trigger.updated, ...")
    ts: datetime
    data: dict[str, Any]


class TriggerEventPage(BaseModel):
    items: list[TriggerEventInfo]
    next_after: int
    has_more: bool


class CreateTrigger(Request):
    name: str
    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    displayName: str | None = None
    description: str | None = None
    subscribe: dict[str, Mode] = Field(
        default_factory=dict, description="flow -> mode (auto: every fire starts a run)"
    )


class UpdateTrigger(Request):
    version: int = Field(description="the version read; another one is a 409")
    type: str | None = None
    config: dict[str, Any] | None = None
    displayName: str | None = None
    description: str | None = None
    status: Literal["active", "deprecated"] | None = Field(
        default=None, description="active also brings a retired trigger back"
    )


class RetireTrigger(Request):
    reason: str | None = Field(default=None, max_length=2000)
    version: int | None = Field(default=None, description="retire only if still this version")


class SubscribeFlow(Request):
    mode: Mode = "auto"


class FireTrigger(Request):
    input: Any = Field(default_factory=dict, description="the payload; checked against the schema")
    flows: list[str] | None = Field(
        default=None, description="subscribed flows to start (manual ones too); default: auto ones"
    )


class FiredRunInfo(BaseModel):
    flow: str
    runId: uuid.UUID


class SkippedFlowInfo(BaseModel):
    flow: str
    reason: str


class FireInfo(BaseModel):
    trigger: str
    fireId: uuid.UUID
    eventId: int = Field(description="the trigger.fired event in the trigger's stream")
    firedAt: datetime
    runs: list[FiredRunInfo]
    skipped: list[SkippedFlowInfo]
    duplicate: bool


class ReplayTrigger(Request):
    last: int | None = Field(default=None, ge=1, le=MAX_REPLAY)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    flows: list[str] | None = None

    @model_validator(mode="after")
    def _selection(self) -> ReplayTrigger:
        if self.last is None and self.since is None and self.until is None:
            raise ValueError("say which fires to replay: last, or since/until")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must come before until")
        return self


class ReplayInfo(BaseModel):
    trigger: str
    replayed: list[int] = Field(description="ids of the replayed trigger.fired events")
    fires: list[FireInfo]


# -- events -----------------------------------------------------------------------------------


class PlainEvent(Request):
    name: str = Field(description="the event's name (dot-separated segments, no wildcards)")
    payload: Any = Field(default_factory=dict)


class EventFire(BaseModel):
    trigger: str
    fireId: uuid.UUID
    runs: list[FiredRunInfo]


class EventFailure(BaseModel):
    trigger: str
    error: dict[str, Any]


class EventOutcome(BaseModel):
    name: str
    id: str | None = Field(description="the CloudEvent's id (null for a plain event)")
    resolved: int = Field(description="event awaits this event resolved")
    fired: list[EventFire]
    failed: list[EventFailure] = Field(description="matching triggers that refused the event")


class EventsAccepted(BaseModel):
    model_config = ConfigDict(title="EventsAccepted")

    events: list[EventOutcome]
