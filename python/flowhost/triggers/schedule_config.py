"""Schedule triggers: their config, and what a scheduler does when it reaches one that is due.

Pure domain code (no I/O). A trigger of type `schedule` has a config such as

```python
{"cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin", "overlap": "skip",
 "catchup": "once", "enabled": True, "payload": {"report": "daily"}}
```

Only `cron` is required. Fire times come from the Rust cron (`flowhost.cron.CronSchedule`: 5 or
6 fields, names, macros, IANA zone, Vixie cron's DST rules). `plan_tick` decides which planned
times a scheduler fires when it gets to a due schedule: those it reaches within the grace fire
late; older ones were missed (no host ran) and follow the catch-up policy. docs/schedules.md is
the user's side of this.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from flowhost.cron import CronSchedule, CronSyntaxError

OVERLAP_POLICIES: Final = ("skip", "queue", "replace", "allow")
CATCHUP_POLICIES: Final = ("skip", "once", "all")
DEFAULT_TIMEZONE: Final = "UTC"
DEFAULT_OVERLAP: Final = "skip"
DEFAULT_CATCHUP: Final = "once"
CONFIG_KEYS: Final = ("cron", "timezone", "overlap", "catchup", "enabled", "payload", "schema")
# Catch-up "all" fires at most this many missed times (the latest ones); older ones are dropped
# (and counted as missed), so that a long downtime does not end in a stampede of runs.
MAX_CATCHUP: Final = 100
# Missed times counted after a downtime, at most (a week of per-second fires is not walked).
MAX_COUNTED: Final = 100_000
# Overlap "queue" keeps at most this many fires waiting; more are skipped.
MAX_QUEUED: Final = 100
_TICK: Final = timedelta(microseconds=1)


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """A valid schedule config with its defaults filled in."""

    cron: str
    timezone: str = DEFAULT_TIMEZONE
    overlap: str = DEFAULT_OVERLAP
    catchup: str = DEFAULT_CATCHUP
    enabled: bool = True
    # The input of each run; absent (None here): {"schedule": name, "planned_at": ...}.
    payload: Any = None
    has_payload: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ScheduleConfig:
        """Read a config `config_problems` found nothing wrong with (else ValueError)."""
        problems = config_problems(config)
        if problems:
            pointer, message = problems[0]
            raise ValueError(f"{pointer}: {message}")
        return cls(
            cron=config["cron"],
            timezone=cron_schedule(config["cron"], config.get("timezone", DEFAULT_TIMEZONE)).tz,
            overlap=config.get("overlap", DEFAULT_OVERLAP),
            catchup=config.get("catchup", DEFAULT_CATCHUP),
            enabled=config.get("enabled", True),
            payload=config.get("payload"),
            has_payload="payload" in config,
        )

    @property
    def schedule(self) -> CronSchedule:
        return cron_schedule(self.cron, self.timezone)

    def input_for(self, name: str, planned: datetime) -> Any:
        """The input of the runs of the fire planned at `planned`."""
        if self.has_payload:
            return self.payload
        return default_payload(name, planned)


def default_payload(name: str, planned: datetime) -> dict[str, str]:
    return {"schedule": name, "planned_at": planned.astimezone(UTC).isoformat()}


@functools.lru_cache(maxsize=1024)
def cron_schedule(cron: str, timezone: str) -> CronSchedule:
    """The parsed schedule (cached: a scheduler asks for the same ones every tick)."""
    return CronSchedule(cron, tz=timezone)


def config_problems(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(JSON Pointer, message) for each problem of a schedule trigger's config. The payload
    against the config's `schema` is checked by the caller (flowhost.triggers.declarations),
    which checks every type's schema."""
    problems: list[tuple[str, str]] = []
    for key in config:
        if key not in CONFIG_KEYS:
            problems.append(
                (f"/config/{key}", f"unknown key of a schedule (known: {', '.join(CONFIG_KEYS)})")
            )
    cron = config.get("cron")
    timezone = config.get("timezone", DEFAULT_TIMEZONE)
    if cron is None:
        problems.append(("/config/cron", "is required: a cron expression such as '0 9 * * *'"))
    elif not isinstance(cron, str):
        problems.append(("/config/cron", f"must be a cron expression (a string), not {cron!r}"))
    if not isinstance(timezone, str) or not timezone:
        problems.append(
            (
                "/config/timezone",
                f"must be an IANA time zone name such as 'Europe/Berlin', not {timezone!r}",
            )
        )
    elif isinstance(cron, str):
        problems += _cron_problems(cron, timezone)
    for key, allowed in (("overlap", OVERLAP_POLICIES), ("catchup", CATCHUP_POLICIES)):
        if key in config and config[key] not in allowed:
            problems.append(
                (f"/config/{key}", f"must be one of {', '.join(allowed)} (got {config[key]!r})")
            )
    if "enabled" in config and not isinstance(config["enabled"], bool):
        problems.append(("/config/enabled", f"must be true or false (got {config['enabled']!r})"))
    return problems


def _cron_problems(cron: str, timezone: str) -> list[tuple[str, str]]:
    try:
        cron_schedule(cron, timezone)
    except CronSyntaxError as exc:
        problems = [("/config/cron", exc.message)]
    except ValueError:  # an unknown zone: the expression parsed, or it would have said so
        problems = []
    else:
        return []
    try:
        cron_schedule("* * * * *", timezone)
    except ValueError as exc:
        problems.append(("/config/timezone", str(exc)))
    return problems


# -- a tick ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedFire:
    """A planned time to fire; `catchup`: it was missed (more than the grace late) and fires
    because of the catch-up policy."""

    at: datetime
    catchup: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Missed:
    """Planned times the catch-up policy dropped: how many, from `first` to `last`. After a long
    downtime the scheduler does not count them all: `more` says there were more than `count`."""

    count: int
    first: datetime
    last: datetime
    more: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "more": self.more,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class TickPlan:
    fires: tuple[PlannedFire, ...]
    missed: Missed | None
    # The first planned time after `now` (None: the cron has no more fire times).
    next_fire: datetime | None


def plan_tick(
    schedule: CronSchedule,
    next_fire: datetime,
    now: datetime,
    *,
    catchup: str,
    grace: float,
    limit: int = MAX_CATCHUP,
) -> TickPlan:
    """What to fire when a scheduler reaches, at `now`, a schedule whose earliest unhandled
    planned time is `next_fire`.

    The due times are the fire times from `next_fire` to `now`. Those at most `grace` seconds
    old fire (late, whatever the policy). Older ones were missed: `catchup` "skip" drops them,
    "once" fires the latest of them, "all" fires them all, at most the latest `limit`. Times are
    in UTC, ascending."""
    if next_fire > now:
        return TickPlan((), None, next_fire)
    # Cron's finest step is a second: at most floor(grace) + 1 due times are within the grace.
    window = limit + math.floor(grace) + 2
    latest = schedule.previous_before(now + _TICK, count=window)
    due = sorted(t.astimezone(UTC) for t in latest if t >= next_fire)
    # Every time fetched is due: older due times (from next_fire on) were not fetched.
    more = len(latest) == window and bool(due) and due[0] > next_fire
    late_after = now - timedelta(seconds=grace)
    on_time = [t for t in due if t >= late_after]
    missed = [t for t in due if t < late_after]
    if catchup == "all":
        caught = missed[-limit:]
    elif catchup == "once":
        caught = missed[-1:]
    else:
        caught = []
    dropped = missed[: len(missed) - len(caught)]
    report = None
    if more or dropped:
        # (With `more`, at most floor(grace) + 1 fetched times are on time and at most `limit`
        # caught up: some fetched ones are dropped.)
        first = next_fire.astimezone(UTC) if more else dropped[0]
        last = dropped[-1] if dropped else first
        uncounted, more = _count_from(schedule, next_fire, due[0]) if more else (0, False)
        report = Missed(len(dropped) + uncounted, first, last, more=more)
    fires = tuple(PlannedFire(t, catchup=True) for t in caught) + tuple(
        PlannedFire(t) for t in on_time
    )
    following = schedule.next_after(now, count=1)
    return TickPlan(fires, report, following[0].astimezone(UTC) if following else None)


def _count_from(schedule: CronSchedule, start: datetime, end: datetime) -> tuple[int, bool]:
    """(fire times from `start` to before `end`, whether there were more than MAX_COUNTED)."""
    counted = 0
    after = start - _TICK
    while counted < MAX_COUNTED:
        batch = schedule.next_after(after, count=min(10_000, MAX_COUNTED - counted))
        before = [t for t in batch if t < end]
        counted += len(before)
        if len(before) < len(batch) or not batch:
            return counted, False
        after = batch[-1]
    return counted, True


def next_fire_after(config: ScheduleConfig, after: datetime) -> datetime | None:
    """The first fire time strictly after `after`, in UTC."""
    found = config.schedule.next_after(after, count=1)
    return found[0].astimezone(UTC) if found else None


__all__ = [
    "CATCHUP_POLICIES",
    "CONFIG_KEYS",
    "MAX_CATCHUP",
    "MAX_QUEUED",
    "OVERLAP_POLICIES",
    "Missed",
    "PlannedFire",
    "ScheduleConfig",
    "TickPlan",
    "config_problems",
    "cron_schedule",
    "default_payload",
    "next_fire_after",
    "plan_tick",
]
