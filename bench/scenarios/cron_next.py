"""Cron next-fire throughput: flowhost's CronSchedule vs croniter and croniter-rs, side by side.

Every contestant does the same work per call: build the schedule from the expression and a start
in the zone, and compute the first fire time after it (croniter's API takes the start at
construction, so building is inside the timed loop for all three). The calls cover every
expression x zone x start, in the same order, in each repetition. A fourth figure, without an
anchor, is flowhost with the schedules built once outside the loop (the host's usual case).

croniter-rs returns naive datetimes (the zone dropped), so its results are compared to ours on
the wall-clock fields only, once per repetition and outside the timed loops.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import croniter_rs
from croniter import croniter

from bench.harness import Context, Measurement
from flowhost.cron import CronSchedule

NAME = "cron_next"
DESCRIPTION = "cron next fire time (parse + next) vs croniter and croniter-rs, many exprs x zones"

EXPRESSIONS = [
    "* * * * *",
    "*/5 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "0 9 * * MON-FRI",
    "15,45 8-18 * * 1-5",
    "0 0 1 * *",
    "0 0 L * *",
    "0 12 * * 5#2",
    "0 0 1 1 *",
    "0 0 13 * 5",
    "0 6 */2 * *",
]
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Pacific/Auckland",
]

Call = tuple[str, str, datetime]


def workload(starts_per_pair: int) -> list[Call]:
    """Every expression x zone, each with `starts_per_pair` aware starts spread over 2020-2030."""
    chooser = random.Random(4)
    calls = []
    for zone in ZONES:
        tz = ZoneInfo(zone)
        for expression in EXPRESSIONS:
            for _ in range(starts_per_pair):
                offset = timedelta(seconds=chooser.randrange(10 * 365 * 86_400))
                calls.append((expression, zone, datetime(2020, 1, 1, tzinfo=tz) + offset))
    return calls


def rate(calls: list[Call], passes: int, one: Callable[[str, str, datetime], object]) -> float:
    """Calls per second of `one` over `passes` passes of `calls`."""
    started = time.perf_counter()
    for _ in range(passes):
        for expression, zone, start in calls:
            one(expression, zone, start)
    return passes * len(calls) / (time.perf_counter() - started)


def flowhost_next(expression: str, zone: str, start: datetime) -> datetime:
    return CronSchedule(expression, zone).next_after(start)[0]


def croniter_next(expression: str, zone: str, start: datetime) -> datetime:
    return croniter(expression, start).get_next(datetime)  # type: ignore[no-any-return]


def croniter_rs_next(expression: str, zone: str, start: datetime) -> datetime:
    return croniter_rs.croniter(expression, start).get_next(datetime)  # type: ignore[no-any-return]


def check_agreement(calls: list[Call]) -> None:
    """The contestants compute the same fire times (wall clock only for croniter-rs).

    Checked in the zones without DST, where cron implementations do not differ (docs/cron.md).
    """
    without_dst = [call for call in calls if call[1] in {"UTC", "Asia/Kolkata", "Asia/Tokyo"}]
    for expression, zone, start in without_dst[:: max(1, len(without_dst) // 200)]:
        ours = flowhost_next(expression, zone, start)
        theirs = croniter_rs_next(expression, zone, start).replace(tzinfo=None)
        if ours.replace(tzinfo=None) != theirs:
            raise RuntimeError(f"{expression!r} in {zone} after {start}: {ours} vs {theirs}")


async def run(ctx: Context) -> list[Measurement]:
    calls = workload(ctx.size(40, quick=4))
    passes = ctx.size(20, quick=2)
    if ctx.repetition == 0:
        check_agreement(calls)
    ours = rate(calls, passes, flowhost_next)
    anchor_croniter = rate(calls, 1, croniter_next)
    anchor_rust = rate(calls, passes, croniter_rs_next)
    built = {
        (expression, zone): CronSchedule(expression, zone)
        for expression in EXPRESSIONS
        for zone in ZONES
    }
    prebuilt = rate(
        calls, passes, lambda expression, zone, start: built[expression, zone].next_after(start)
    )
    rates = f"flowhost {ours:,.0f}/s, croniter {anchor_croniter:,.0f}/s"
    ctx.log(f"{len(calls)} calls: {rates}, croniter-rs {anchor_rust:,.0f}/s")
    return [
        Measurement(
            "next_fire_per_s", ours, "calls/s", anchor="croniter", anchor_value=anchor_croniter
        ),
        Measurement(
            "next_fire_per_s_vs_rs", ours, "calls/s", anchor="croniter_rs", anchor_value=anchor_rust
        ),
        Measurement("next_fire_prebuilt_per_s", prebuilt, "calls/s"),
    ]
