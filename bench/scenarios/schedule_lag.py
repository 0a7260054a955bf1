"""Scheduler tick lag: per-second schedules fired by one host, from planned time to commit.

Ten schedule triggers with the six-field cron `* * * * * *` each start runs of their own no-op
in-process flow; one host serves them (its consumer runs the runs, its scheduler fires the
schedules) for a minute (30 s under `--quick`) after a few seconds of warm-up. The lag of a
fire is the time from its planned second to the commit of the transaction that started its run
and recorded it (on the database's clock, as the scheduler reads it: `Scheduler.commit_lags`).
The lag its `trigger.fired` event records (taken when the fire begins) is logged beside it.

The anchor, in the same repetition and process: `bench/anchors/asyncio_tick.py`, a plain asyncio
loop that sleeps until each second and does ten INSERT + COMMITs, the floor below any scheduler
on this machine. Target (DESIGN §11): p99 ≤ 50 ms.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from bench.anchors import asyncio_tick_lag
from bench.engine_drain import temporary_project
from bench.harness import Context, Measurement, percentile
from flowhost.engine.host import Host
from flowhost.project import Project

NAME = "schedule_lag"
DESCRIPTION = "per-second schedules on one host: planned time → fire committed, p50/p99"

SCHEDULES = 10
WARMUP = 5
SOURCE = """
from flowhost_worker import step

@step(flow="ticks_{n}", entry=True, isolation="inprocess",
      triggers={{"define": {{"name": "second.{n}", "type": "schedule",
                            "config": {{"cron": "* * * * * *", "overlap": "allow"}}}},
                "subscribe": "second.{n}"}})
async def tick(data, ctx):
    return None
"""
FIRE_LAGS = """
SELECT (data #>> '{details,lag_ms}')::float8 AS lag
FROM flowhost.trigger_events
WHERE type = 'trigger.fired' AND ts > %(since)s
"""


async def fire_lags(project: Project, since: Any) -> list[float]:
    async with project.database.connection() as conn:
        rows = await (await conn.execute(FIRE_LAGS, {"since": since})).fetchall()
    return [row["lag"] for row in rows]


async def run(ctx: Context) -> list[Measurement]:
    seconds = ctx.size(60, quick=30)
    files = {f"ticks_{n}.py": SOURCE.format(n=n) for n in range(SCHEDULES)}
    async with ctx.fresh_database("engine") as url, temporary_project(url, files) as project:
        ready = asyncio.Event()
        host = Host(project, on_ready=lambda _: ready.set())
        stop = asyncio.Event()
        serving = asyncio.create_task(host.serve(stop))
        try:
            await asyncio.wait_for(ready.wait(), 60)
            await asyncio.sleep(WARMUP)
            scheduler = host.scheduler
            assert scheduler is not None
            scheduler.commit_lags.clear()
            async with project.database.connection() as conn:
                since = await (await conn.execute("SELECT clock_timestamp() AS t")).fetchone()
            await asyncio.sleep(seconds)
            lags = list(scheduler.commit_lags)
            at_fire = await fire_lags(project, since and since["t"])
        finally:
            stop.set()
            await serving
    expected = seconds * SCHEDULES
    if len(lags) < expected * 0.95:
        raise RuntimeError(f"schedule lag: {len(lags)} fires in {seconds} s, expected ~{expected}")
    ctx.log(
        f"{len(lags)} fires: commit lag p50 {statistics.median(lags):.2f} ms, p99 "
        f"{percentile(lags, 0.99):.2f} ms, max {max(lags):.2f} ms; lag when the fire began p50 "
        f"{statistics.median(at_fire):.2f} ms, p99 {percentile(at_fire, 0.99):.2f} ms"
    )
    async with ctx.fresh_database("anchor") as url:
        anchor = await asyncio_tick_lag(url, schedules=SCHEDULES, seconds=seconds)
    ctx.log(
        f"asyncio loop + INSERT/COMMIT: p50 {statistics.median(anchor):.2f} ms, p99 "
        f"{percentile(anchor, 0.99):.2f} ms"
    )
    return [
        Measurement(
            f"commit_lag_{name}_ms",
            percentile(lags, fraction),
            "ms",
            higher_is_better=False,
            anchor=f"asyncio_insert_commit_{name}_ms",
            anchor_value=percentile(anchor, fraction),
        )
        for name, fraction in (("p50", 0.5), ("p99", 0.99))
    ]
