"""The JSON shapes of the API, as pydantic models: they validate requests and make the OpenAPI
document. Times are RFC 3339 strings, ids UUIDs, durations milliseconds."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from flowhost.engine.starting import (
    MAX_PRIORITY,
    MAX_START_KEY_LENGTH,
    MIN_PRIORITY,
    StartOptions,
)
from flowhost.errors import InvalidInputError
from flowhost.store.json_data import as_json

RunStatus = Literal["queued", "running", "awaiting", "completed", "failed", "canceled", "stalled"]
StepStatus = Literal["queued", "running", "awaiting", "completed", "failed", "skipped", "canceled"]


class Request(BaseModel):
    """Request bodies: unknown members are an error (a typo must not pass unnoticed)."""

    model_config = ConfigDict(extra="forbid")


# -- errors -----------------------------------------------------------------------------------


class FieldError(BaseModel):
    location: str = Field(description="where the value is: body, query, path or header")
    pointer: str = Field(description="RFC 6901 JSON Pointer to the value there")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = Field(
        default=None, description="422: each invalid value of the request"
    )


# -- health -----------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    schema_version: int = Field(description="the latest migration applied")


# -- flows ------------------------------------------------------------------------------------


class StepInfo(BaseModel):
    name: str
    entry: bool
    subscribes: list[str]
    emits: list[str]
    runtime: str
    file: str
    line: int
    config: dict[str, Any] = Field(description="the step's whole declaration")


class FlowStatistics(BaseModel):
    total: int = 0
    queued: int = 0
    running: int = 0
    awaiting: int = 0
    completed: int = 0
    failed: int = 0
    canceled: int = 0
    stalled: int = 0
    total_duration_ms: int = 0
    max_duration_ms: int = 0
    mean_duration_ms: float | None = None
    last_run_at: datetime | None = None
    last_completed_at: datetime | None = None


class FlowSummary(BaseModel):
    name: str
    entry: str
    definition_hash: str
    steps: list[StepInfo]
    layers: list[list[str]] = Field(description="steps grouped by what they wait for")
    hosts: int = Field(description="live hosts serving this definition")
    statistics: FlowStatistics


class FlowProblem(BaseModel):
    file: str
    line: int
    message: str
    flow: str | None


class FlowList(BaseModel):
    items: list[FlowSummary]
    problems: list[FlowProblem] = Field(description="why some flows are not defined")


class Durations(BaseModel):
    runs: int = Field(description="completed runs counted (the latest ones)")
    p50: float | None
    p95: float | None


class StepStatistics(BaseModel):
    step: str
    completed: int
    failed: int
    retried: int
    skipped: int
    total_duration_ms: float
    max_duration_ms: float
    mean_duration_ms: float | None
    last_finished_at: datetime | None


class FlowDetail(FlowSummary):
    limits: dict[str, Any] = Field(description="flow control: max_runs, key_concurrency, ...")
    durations: Durations
    step_statistics: list[StepStatistics]


# -- runs -------------------------------------------------------------------------------------


class RunSummary(BaseModel):
    id: uuid.UUID
    flow: str
    status: RunStatus
    priority: int
    step_count: int
    completed_steps: int
    created_at: datetime
    finished_at: datetime | None
    start_at: datetime | None = Field(description="a delayed run's start, while it waits")
    parent_run_id: uuid.UUID | None


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")


class StepState(BaseModel):
    name: str
    status: StepStatus
    attempt: int
    max_attempts: int
    result: Any
    error: dict[str, Any] | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class AwaitInfo(BaseModel):
    step: str
    position: Literal["before", "after"]
    type: Literal["time", "event", "webhook", "schedule"]
    status: Literal["waiting", "resolved", "timed_out", "canceled"]
    registration: int
    event: str | None
    method: str | None
    url: str | None = Field(description="a webhook await's resolve URL (it holds its secret)")
    resolve_at: datetime | None
    timeout_at: datetime | None
    created_at: datetime
    resolved_at: datetime | None


class RunDetail(BaseModel):
    id: uuid.UUID
    flow: str
    status: RunStatus
    input: Any
    result: Any
    error: dict[str, Any] | None
    definition_hash: str
    priority: int
    step_count: int
    completed_steps: int
    created_at: datetime
    finished_at: datetime | None
    start_at: datetime | None
    parent_run_id: uuid.UUID | None
    steps: list[StepState]
    awaits: list[AwaitInfo]


class AwaitList(BaseModel):
    items: list[AwaitInfo]


class EventInfo(BaseModel):
    id: int
    type: str
    step: str | None
    attempt: int | None
    ts: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[EventInfo]
    next_after: int = Field(
        description="pass as `after` for the next page, or to poll for new events"
    )
    has_more: bool = Field(description="more events follow now (the page is full)")


class RunState(BaseModel):
    run_id: uuid.UUID
    at: int | None = Field(description="the event the state is as of; null: now")
    state: dict[str, Any]


class StartRequest(Request):
    flow: str = Field(min_length=1, description="the flow to start")
    input: Any = Field(default_factory=dict, description="the run's input (any JSON)")
    priority: int | None = Field(
        default=None, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="default: the flow's"
    )
    delay: float = Field(default=0.0, ge=0, description="seconds before the run starts")
    start_at: AwareDatetime | None = Field(default=None, description="when the run starts")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_START_KEY_LENGTH)
    dedupe_key: str | None = Field(default=None, min_length=1, max_length=MAX_START_KEY_LENGTH)
    dedupe_window: float | None = Field(default=None, gt=0, description="seconds")
    debounce_key: str | None = Field(default=None, min_length=1, max_length=MAX_START_KEY_LENGTH)
    debounce_window: float | None = Field(default=None, gt=0, description="seconds")

    @field_validator("input")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        try:
            return as_json(value, "input")
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("delay", "dedupe_window", "debounce_window")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @model_validator(mode="after")
    def _options(self) -> StartRequest:
        # The rules that tie options together are StartOptions'; checked here too, so that a
        # refusal is a 422 with the others.
        try:
            self.options()
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None
        return self

    def options(self) -> StartOptions:
        return StartOptions(
            priority=self.priority,
            delay=self.delay,
            start_at=self.start_at,
            idempotency_key=self.idempotency_key,
            dedupe_key=self.dedupe_key,
            dedupe_window=self.dedupe_window,
            debounce_key=self.debounce_key,
            debounce_window=self.debounce_window,
        )


class Started(BaseModel):
    id: uuid.UUID
    flow: str
    status: RunStatus
    created: bool = Field(description="false: a start key named a run that already existed")
    served: bool = Field(description="a live host serves the flow (else the run waits for one)")


class CancelRequest(Request):
    reason: str | None = Field(default=None, max_length=1000)


class Canceled(BaseModel):
    id: uuid.UUID
    status: Literal["canceled"] = "canceled"
    previous_status: RunStatus
    steps: list[str] = Field(description="steps that were queued, running or awaiting")


class Restarted(BaseModel):
    id: uuid.UUID = Field(description="the new run")
    restart_of: uuid.UUID
    canceled: bool = Field(description="the old run was live, and is now canceled")
    served: bool


class ReplayRequest(Request):
    from_step: str = Field(min_length=1)


class Replayed(BaseModel):
    id: uuid.UUID = Field(description="the new run")
    replay_of: uuid.UUID
    from_step: str
    reused: list[str] = Field(description="steps whose recorded results the new run reuses")
    served: bool


class Retried(BaseModel):
    id: uuid.UUID
    status: Literal["running"] = "running"
    previous_status: RunStatus
    steps: dict[str, int] = Field(description="step -> the number of its new attempt")
    unskipped: list[str]
    served: bool


class ParkedRun(BaseModel):
    id: uuid.UUID
    flow: str
    status: RunStatus
    definition_hash: str
    since: datetime


class ParkedList(BaseModel):
    items: list[ParkedRun]


class MigrateRequest(Request):
    run_id: uuid.UUID | None = Field(default=None, description="one live run")
    flow: str | None = Field(default=None, min_length=1, description="every live run of it")
    to: str | None = Field(
        default=None, min_length=1, description="the definition hash, when hosts serve several"
    )

    @model_validator(mode="after")
    def _one_target(self) -> MigrateRequest:
        if (self.run_id is None) == (self.flow is None):
            raise ValueError("give run_id or flow (one of them)")
        return self


class Migrated(BaseModel):
    flow: str
    to: str = Field(description="the definition hash the runs are now on")
    migrated: dict[str, str] = Field(description="run id -> the definition hash it had")
    refused: dict[str, list[str]] = Field(
        description="run id -> its scheduled steps the definition lacks"
    )
