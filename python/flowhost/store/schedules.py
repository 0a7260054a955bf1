"""Schedules in Postgres: the rows hosts' schedulers claim and move on, and their figures.

Functions here run on a connection the caller owns, inside its transaction. A schedule's row is
locked before its trigger's row by every writer (claim, reconcile, enable/disable, edit), so
that they cannot deadlock with each other.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES

# The channel that wakes schedulers when a schedule's next planned time changed.
CHANNEL = "flowhost_schedules"


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleState:
    """A schedule's row with its trigger, locked (as reconcile and runtime changes read it)."""

    name: str
    trigger_version: int
    cron: str | None
    timezone: str | None
    declared_enabled: bool | None
    enabled: bool
    next_fire: datetime | None
    queued: tuple[datetime, ...]
    live_runs: tuple[uuid.UUID, ...]
    last_planned_at: datetime | None
    # The trigger's
    type: str
    status: str
    config: dict[str, Any]
    version: int
    updated_at: datetime
    # The database's clock when read.
    now: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ScheduleState:
        return cls(
            name=row["name"],
            trigger_version=row["trigger_version"],
            cron=row["cron"],
            timezone=row["timezone"],
            declared_enabled=row["declared_enabled"],
            enabled=row["enabled"],
            next_fire=row["next_fire"],
            queued=tuple(row["queued"]),
            live_runs=tuple(row["live_runs"]),
            last_planned_at=row["last_planned_at"],
            type=row["type"],
            status=row["status"],
            config=dict(row["config"]),
            version=row["version"],
            updated_at=row["updated_at"],
            now=row["now"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DueSchedule:
    """A schedule a scheduler claimed (locked until its transaction ends)."""

    name: str
    next_fire: datetime | None
    queued: tuple[datetime, ...]
    live_runs: tuple[uuid.UUID, ...]
    config: dict[str, Any]
    # The claim's clock (the database's): what was due is due at this time.
    now: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DueSchedule:
        return cls(
            name=row["name"],
            next_fire=row["next_fire"],
            queued=tuple(row["queued"]),
            live_runs=tuple(row["live_runs"]),
            config=dict(row["config"]),
            now=row["now"],
        )


@dataclasses.dataclass(slots=True)
class TickRecord:
    """What a tick changes in a schedule's row."""

    name: str
    next_fire: datetime | None
    queued: list[datetime]
    live_runs: list[uuid.UUID]
    last_planned_at: datetime | None = None
    last_fired_at: datetime | None = None
    last_lag_ms: float | None = None
    lag_fires: int = 0
    lag_total_ms: float = 0.0
    lag_max_ms: float = 0.0
    skipped: int = 0
    missed: int = 0
    failed: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class NextWake:
    """When a scheduler should look again."""

    next_fire: datetime | None
    # Live runs queued fires wait for.
    blocking: frozenset[uuid.UUID]
    # Schedules with queued fires.
    queued: int
    now: datetime


# -- keeping rows up to date with their triggers ----------------------------------------------


async def names_to_reconcile(conn: Connection) -> list[str]:
    await conn.execute(QUERIES["drop_schedules_of_other_types"])
    rows = await (await conn.execute(QUERIES["schedules_to_reconcile"])).fetchall()
    return [row["name"] for row in rows]


async def schedule_for_update(conn: Connection, name: str) -> ScheduleState | None:
    """The schedule's row (made if its trigger is a schedule without one), locked."""
    await conn.execute(QUERIES["ensure_schedule_row"], {"name": name})
    row = await (await conn.execute(QUERIES["schedule_for_update"], {"name": name})).fetchone()
    return None if row is None else ScheduleState.from_row(row)


async def write_schedule(
    conn: Connection,
    name: str,
    *,
    trigger_version: int,
    cron: str | None,
    timezone: str | None,
    declared_enabled: bool | None,
    enabled: bool,
    next_fire: datetime | None,
    queued: Sequence[datetime],
) -> None:
    await conn.execute(
        QUERIES["write_schedule"],
        {
            "name": name,
            "trigger_version": trigger_version,
            "cron": cron,
            "timezone": timezone,
            "declared_enabled": declared_enabled,
            "enabled": enabled,
            "next_fire": next_fire,
            "queued": list(queued),
        },
    )


async def touch_trigger_version(conn: Connection, name: str) -> tuple[int, datetime]:
    row = await (await conn.execute(QUERIES["touch_trigger_version"], {"name": name})).fetchone()
    assert row is not None, "the caller locked the trigger"
    return int(row["version"]), row["updated_at"]


# -- ticks ----------------------------------------------------------------------------------


async def claim_due(
    conn: Connection, *, lead: float = 0.0, queued: bool = True
) -> DueSchedule | None:
    """A schedule due within `lead` seconds, or (with `queued`: some schedule has queued fires)
    one whose queued fires can go now; locked (SKIP LOCKED). Its `live_runs` are those still
    live."""
    row = await (await conn.execute(QUERIES["claim_due_schedule"], {"lead": lead})).fetchone()
    if row is None and queued:
        row = await (await conn.execute(QUERIES["claim_unblocked_schedule"])).fetchone()
    return None if row is None else DueSchedule.from_row(row)


async def record_tick(conn: Connection, record: TickRecord) -> None:
    await conn.execute(QUERIES["record_tick"], dataclasses.asdict(record))


async def next_wake(conn: Connection) -> NextWake:
    row = await (await conn.execute(QUERIES["schedules_next_wake"])).fetchone()
    assert row is not None
    return NextWake(row["next_fire"], frozenset(row["blocking"]), int(row["queued"]), row["now"])


async def database_now(conn: Connection) -> datetime:
    row = await (await conn.execute(QUERIES["database_now"])).fetchone()
    assert row is not None
    now: datetime = row["now"]
    return now


# -- reading --------------------------------------------------------------------------------


async def list_schedules(
    conn: Connection,
    *,
    name: str | None = None,
    after: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(
            QUERIES["list_schedules"],
            {"name": name, "after": after, "status": status, "limit": limit},
        )
    ).fetchall()
    return [dict(row) for row in rows]


async def schedule_fires(conn: Connection, name: str, limit: int) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(QUERIES["schedule_fires"], {"name": name, "limit": limit})
    ).fetchall()
    return [dict(row) for row in rows]


async def lag_percentiles(conn: Connection, name: str, limit: int) -> dict[str, Any]:
    row = await (
        await conn.execute(QUERIES["schedule_lag_percentiles"], {"name": name, "limit": limit})
    ).fetchone()
    assert row is not None
    return dict(row)
