"""The schedules API: what the HTTP routes, the dashboard and the CLI call for schedule triggers.

A schedule is a trigger of type `schedule` (flowhost.triggers.service creates, subscribes and
retires it like any trigger); this module adds what only schedules have. Each function runs on a
connection the caller owns; those that change something expect the caller's transaction (one
per request), and leave the schedule's row up to date at commit, so every host's scheduler
follows at once (NOTIFY flowhost_schedules).

- `enable_schedule` / `disable_schedule`: the runtime state. It survives host restarts: the
  config's `enabled` is the state a schedule starts in, and the state it takes again only when
  that declaration changes. A schedule enabled again fires from the next planned time on (the
  times it was disabled for are not caught up).
- `update_schedule`: cron, time zone, policies, payload, with the trigger's optimistic version.
  A schedule declared in a function config gets its config back at the next host start.
- `next_fires`, `last_fires`, `lag`: planned times from the Rust cron, fires with their lag.

Errors (HTTP status as in flowhost.triggers.service.HTTP_STATUS): TriggerNotFoundError (no such
schedule, 404), TriggerConflictError (version mismatch, 409), TriggerRetiredError (enable a
retired schedule, 409), TriggerConfigError (422, with a JSON Pointer per problem),
InvalidInputError (another bad argument, 422).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from flowhost.db.database import Connection
from flowhost.errors import (
    InvalidInputError,
    TriggerConflictError,
    TriggerNotFoundError,
    TriggerRetiredError,
)
from flowhost.store import schedules as store
from flowhost.store import triggers as trigger_store
from flowhost.store.schedules import ScheduleState
from flowhost.store.triggers import TRIGGER_UPDATED, NewTriggerEvent
from flowhost.triggers import service
from flowhost.triggers.declarations import TriggerSpec
from flowhost.triggers.schedule_config import (
    DEFAULT_CATCHUP,
    DEFAULT_OVERLAP,
    DEFAULT_TIMEZONE,
    ScheduleConfig,
    next_fire_after,
)
from flowhost.triggers.schedule_state import reconcile
from flowhost.triggers.service import UNCHANGED, _Unchanged

MAX_LIST = 1000
MAX_NEXT = 1000
MAX_FIRES = 1000
# Fires the lag percentiles are taken over, by default.
LAG_WINDOW: Final = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleView:
    """A schedule as the API and the CLI show it."""

    name: str
    status: str
    source: str
    display_name: str | None
    description: str | None
    version: int
    declared_at: str | None
    config: dict[str, Any]
    # Its runtime state; `computed`: a scheduler (or this API) has brought its row up to date
    # with its trigger (until then `next_fire` may be stale).
    enabled: bool
    computed: bool
    next_fire: datetime | None
    queued: tuple[datetime, ...]
    live_runs: int
    last_planned_at: datetime | None
    last_fired_at: datetime | None
    last_lag_ms: float | None
    total_fires: int
    lag_fires: int
    lag_mean_ms: float | None
    lag_max_ms: float | None
    skipped: int
    missed: int
    failed: int
    subscriptions: tuple[dict[str, str], ...]

    @property
    def cron(self) -> str | None:
        value = self.config.get("cron")
        return value if isinstance(value, str) else None

    @property
    def timezone(self) -> str:
        return str(self.config.get("timezone", DEFAULT_TIMEZONE))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "source": self.source,
            "displayName": self.display_name,
            "description": self.description,
            "version": self.version,
            "declaredAt": self.declared_at,
            "cron": self.cron,
            "timezone": self.timezone,
            "overlap": self.config.get("overlap", DEFAULT_OVERLAP),
            "catchup": self.config.get("catchup", DEFAULT_CATCHUP),
            "payload": self.config.get("payload"),
            "enabled": self.enabled,
            "declaredEnabled": self.config.get("enabled", True),
            "computed": self.computed,
            "nextFire": _iso(self.next_fire),
            "queued": [t.isoformat() for t in self.queued],
            "liveRuns": self.live_runs,
            "lastPlannedAt": _iso(self.last_planned_at),
            "lastFiredAt": _iso(self.last_fired_at),
            "subscriptions": list(self.subscriptions),
            "stats": {
                "totalFires": self.total_fires,
                "lastLagMs": self.last_lag_ms,
                "lagFires": self.lag_fires,
                "lagMeanMs": self.lag_mean_ms,
                "lagMaxMs": self.lag_max_ms,
                "skipped": self.skipped,
                "missed": self.missed,
                "failed": self.failed,
            },
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ScheduleView:
        lag_fires = int(row["lag_fires"])
        return cls(
            name=row["name"],
            status=row["status"],
            source=row["source"],
            display_name=row["display_name"],
            description=row["description"],
            version=row["version"],
            declared_at=row["declared_at"],
            config=dict(row["config"]),
            enabled=row["enabled"] if row["computed"] else bool(row["config"].get("enabled", True)),
            computed=bool(row["computed"] and row["current"]),
            next_fire=row["next_fire"],
            queued=tuple(row["queued"]),
            live_runs=len(row["live_runs"]),
            last_planned_at=row["last_planned_at"],
            last_fired_at=row["last_fired_at"],
            last_lag_ms=row["last_lag_ms"],
            total_fires=int(row["total_fires"]),
            lag_fires=lag_fires,
            lag_mean_ms=row["lag_total_ms"] / lag_fires if lag_fires else None,
            lag_max_ms=row["lag_max_ms"] if lag_fires else None,
            skipped=int(row["skipped"]),
            missed=int(row["missed"]),
            failed=int(row["failed"]),
            subscriptions=tuple(row["subscriptions"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleFire:
    """One fire of a schedule: when it was planned, when it fired, its lag and its runs."""

    event_id: int
    planned_at: datetime | None
    fired_at: datetime
    lag_ms: float | None
    runs: tuple[dict[str, str], ...]
    catchup: bool
    queued: bool
    host: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "plannedAt": _iso(self.planned_at),
            "firedAt": self.fired_at.isoformat(),
            "lagMs": self.lag_ms,
            "runs": [{"flow": r["flow"], "runId": r["run_id"]} for r in self.runs],
            "catchup": self.catchup,
            "queued": self.queued,
            "host": self.host,
        }


# -- reading --------------------------------------------------------------------------------


async def list_schedules(
    conn: Connection,
    *,
    status: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[ScheduleView]:
    """Schedules by name, after the name `after` (paging)."""
    _check_limit(limit, MAX_LIST)
    rows = await store.list_schedules(conn, status=status, after=after, limit=limit)
    return [ScheduleView.from_row(row) for row in rows]


async def get_schedule(conn: Connection, name: str) -> ScheduleView:
    rows = await store.list_schedules(conn, name=name, limit=1)
    if not rows:
        raise await _not_found(conn, name)
    return ScheduleView.from_row(rows[0])


async def next_fires(
    conn: Connection, name: str, count: int = 10, *, after: datetime | None = None
) -> list[datetime]:
    """The next `count` fire times of the schedule's cron strictly after `after` (default: now,
    on the database's clock), in the schedule's zone, from the Rust cron. They are the times it
    fires at while it is enabled (a disabled schedule has them too)."""
    _check_limit(count, MAX_NEXT, "count")
    if after is not None and (not isinstance(after, datetime) or after.tzinfo is None):
        raise InvalidInputError("after must be a datetime with a time zone")
    view = await get_schedule(conn, name)
    try:
        config = ScheduleConfig.from_config(view.config)
    except ValueError as exc:
        raise InvalidInputError(f"schedule {name!r} has an invalid config: {exc}") from exc
    start = after if after is not None else await store.database_now(conn)
    return list(config.schedule.next_after(start, count=count))


async def last_fires(conn: Connection, name: str, limit: int = 20) -> list[ScheduleFire]:
    """The schedule's last `limit` fires, newest first."""
    _check_limit(limit, MAX_FIRES)
    await get_schedule(conn, name)
    fires = []
    for row in await store.schedule_fires(conn, name, limit):
        details = row["details"] or {}
        planned = details.get("planned_at")
        fires.append(
            ScheduleFire(
                event_id=row["id"],
                planned_at=None if planned is None else datetime.fromisoformat(planned),
                fired_at=row["ts"],
                lag_ms=details.get("lag_ms"),
                runs=tuple(row["runs"] or ()),
                catchup=bool(details.get("catchup")),
                queued=bool(details.get("queued")),
                host=details.get("host"),
            )
        )
    return fires


async def lag(conn: Connection, name: str, *, last: int = LAG_WINDOW) -> dict[str, Any]:
    """p50, p99 and max of the lag (ms) of the schedule's last `last` fires that were neither
    caught up nor queued: `{"fires", "p50", "p99", "max"}` (None without fires)."""
    _check_limit(last, 100_000, "last")
    await get_schedule(conn, name)
    found = await store.lag_percentiles(conn, name, last)
    return {"fires": int(found["fires"]), **{k: found[k] for k in ("p50", "p99", "max")}}


# -- changing -------------------------------------------------------------------------------


async def create_schedule(
    conn: Connection,
    name: str,
    *,
    cron: str,
    timezone: str = DEFAULT_TIMEZONE,
    overlap: str = DEFAULT_OVERLAP,
    catchup: str = DEFAULT_CATCHUP,
    enabled: bool = True,
    payload: Any = UNCHANGED,
    schema: Mapping[str, Any] | None = None,
    subscribe: Mapping[str, str] | None = None,
    display_name: str | None = None,
    description: str | None = None,
) -> ScheduleView:
    """Register a schedule trigger (source "api"), subscriptions flow -> mode; its first
    planned time is the first after now. Without `payload`, each run's input is
    `{"schedule": name, "planned_at": ...}`."""
    config: dict[str, Any] = {
        "cron": cron,
        "timezone": timezone,
        "overlap": overlap,
        "catchup": catchup,
        "enabled": enabled,
    }
    if payload is not UNCHANGED:
        config["payload"] = payload
    if schema is not None:
        config["schema"] = schema
    spec = TriggerSpec(name, "schedule", config, display_name, description)
    service.check_spec(spec)
    await service.create_trigger(conn, spec, subscribe=subscribe)
    await reconcile(conn, name)
    return await get_schedule(conn, name)


async def update_schedule(
    conn: Connection,
    name: str,
    *,
    version: int,
    cron: str | _Unchanged = UNCHANGED,
    timezone: str | _Unchanged | None = UNCHANGED,
    overlap: str | _Unchanged | None = UNCHANGED,
    catchup: str | _Unchanged | None = UNCHANGED,
    payload: Any = UNCHANGED,
    schema: Mapping[str, Any] | _Unchanged | None = UNCHANGED,
) -> ScheduleView:
    """Change the schedule's config if its trigger's version is still `version` (else
    TriggerConflictError with the current one). None removes a key (its default applies
    again; for `payload`: each run gets the default input). A new cron or zone plans the next
    fire from now; other changes keep it."""
    config = dict((await _locked(conn, name)).config)
    changes = {
        "cron": cron,
        "timezone": timezone,
        "overlap": overlap,
        "catchup": catchup,
        "payload": payload,
        "schema": schema,
    }
    for key, value in changes.items():
        if value is UNCHANGED:
            continue
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    await service.update_trigger(conn, name, version=version, config=config)
    await reconcile(conn, name)
    return await get_schedule(conn, name)


async def enable_schedule(
    conn: Connection, name: str, *, version: int | None = None
) -> ScheduleView:
    """Enable the schedule: it fires from its next planned time after now. With `version`,
    only if its trigger is still at that version. Enabling an enabled schedule changes
    nothing."""
    return await _set_enabled(conn, name, True, version)


async def disable_schedule(
    conn: Connection, name: str, *, version: int | None = None
) -> ScheduleView:
    """Disable the schedule: it fires no more (its queued fires are dropped) until enabled."""
    return await _set_enabled(conn, name, False, version)


async def _set_enabled(
    conn: Connection, name: str, enabled: bool, version: int | None
) -> ScheduleView:
    state = await _locked(conn, name)
    trigger = await trigger_store.trigger_for_update(conn, name)
    assert trigger is not None, "the schedule's row keeps its trigger"
    if version is not None and trigger.version != version:
        raise TriggerConflictError(
            f"schedule {name!r} is at version {trigger.version}, not {version}: it changed "
            "meanwhile; read it again",
            trigger=name,
            version=trigger.version,
        )
    if enabled and trigger.status == "retired":
        raise TriggerRetiredError(f"schedule {name!r} is retired: it does not fire", trigger=name)
    if state.enabled == enabled:
        return await get_schedule(conn, name)
    new_version, changed_at = await store.touch_trigger_version(conn, name)
    await trigger_store.append_trigger_events(
        conn,
        [
            NewTriggerEvent(
                name,
                TRIGGER_UPDATED,
                {
                    "changes": {"enabled": {"from": state.enabled, "to": enabled}},
                    "version": new_version,
                },
            )
        ],
    )
    next_fire = None
    if enabled and state.cron is not None:
        since = max(changed_at, state.last_planned_at or changed_at)
        next_fire = next_fire_after(ScheduleConfig.from_config(state.config), since)
    await store.write_schedule(
        conn,
        name,
        trigger_version=new_version,
        cron=state.cron,
        timezone=state.timezone,
        declared_enabled=state.declared_enabled,
        enabled=enabled,
        next_fire=next_fire,
        queued=state.queued if enabled else (),
    )
    return await get_schedule(conn, name)


async def _locked(conn: Connection, name: str) -> ScheduleState:
    """The schedule's row, up to date with its trigger and locked (before its trigger's row:
    the order schedulers take them in)."""
    state = await reconcile(conn, name)
    if state is None:
        raise await _not_found(conn, name)
    return state


async def _not_found(conn: Connection, name: str) -> TriggerNotFoundError:
    found = await trigger_store.list_triggers(conn, name=name, limit=1)
    if found:
        return TriggerNotFoundError(
            f"trigger {name!r} is a {found[0].type} trigger, not a schedule", trigger=name
        )
    return TriggerNotFoundError(f"no schedule {name!r}", trigger=name)


def _check_limit(value: int, most: int, what: str = "limit") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidInputError(f"{what} must be from 1 to {most} (got {value!r})")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


__all__ = [
    "ScheduleFire",
    "ScheduleView",
    "create_schedule",
    "disable_schedule",
    "enable_schedule",
    "get_schedule",
    "lag",
    "last_fires",
    "list_schedules",
    "next_fires",
    "update_schedule",
]
