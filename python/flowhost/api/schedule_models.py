"""The bodies of `/api/schedules` (flowhost.api.routes.schedules), as the OpenAPI document
shows them: the shapes of flowhost.triggers.schedule_service's views."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Overlap = Literal["skip", "queue", "replace", "allow"]
Catchup = Literal["skip", "once", "all"]


class ScheduleStats(BaseModel):
    totalFires: int
    lastLagMs: float | None
    lagFires: int = Field(description="fires whose lag counts (neither caught up nor queued)")
    lagMeanMs: float | None
    lagMaxMs: float | None
    skipped: int = Field(description="planned times skipped by the overlap policy")
    missed: int = Field(description="planned times missed while no host ran (catch-up)")
    failed: int


class ScheduleInfo(BaseModel):
    """A schedule trigger with its runtime state (docs/schedules.md)."""

    name: str
    status: str
    source: Literal["config", "api"]
    displayName: str | None
    description: str | None
    version: int = Field(description="the trigger's version; pass it back to change it")
    declaredAt: str | None
    cron: str | None
    timezone: str
    overlap: Overlap
    catchup: Catchup
    payload: Any = Field(description="each run's input (null: the schedule and planned time)")
    enabled: bool
    declaredEnabled: bool
    computed: bool = Field(description="false until a scheduler brought the row up to date")
    nextFire: datetime | None
    queued: list[datetime] = Field(description="fires waiting behind live runs (overlap queue)")
    liveRuns: int
    lastPlannedAt: datetime | None
    lastFiredAt: datetime | None
    subscriptions: list[dict[str, str]]
    stats: ScheduleStats


class SchedulePage(BaseModel):
    items: list[ScheduleInfo]
    next_after: str | None = Field(description="pass as `after` for the next page; null: the last")


class NextFires(BaseModel):
    name: str
    timezone: str
    times: list[datetime]


class ScheduleFireInfo(BaseModel):
    eventId: int
    plannedAt: datetime | None
    firedAt: datetime
    lagMs: float | None
    runs: list[dict[str, str]]
    catchup: bool
    queued: bool
    host: str | None


class ScheduleLag(BaseModel):
    fires: int
    p50: float | None
    p99: float | None
    max: float | None


class UpdateSchedule(BaseModel):
    """What to change; a member left out stays as it is."""

    version: int = Field(description="the version read; 409 if it changed meanwhile")
    cron: str | None = None
    timezone: str | None = None
    overlap: Overlap | None = None
    catchup: Catchup | None = None


class ToggleSchedule(BaseModel):
    version: int | None = Field(None, description="only if the trigger is still at this version")
