"""Emit → next step started, on an idle host: in-process steps and Python-child steps.

A two-step flow: `first` notes the wall clock, calls `ctx.emit("first.done")` and returns that
time; `second` subscribes to `first.done`. An emit takes effect when the step that made it
completes (the emit is recorded with the step's result, in the transaction that also enqueues
the steps it made ready), so the time measured, from `first`'s `ctx.emit` call to `second`'s
`step.started` event (the `clock_timestamp()` of its claim), covers: the handler returning, its
result and emit recorded and committed, the NOTIFY, the dequeue and the claim. The same clock
(the machine's wall clock) is read by the handler and by Postgres. The completion's share
(`step.completed` of `first` → `step.started` of `second`) is logged beside it.

Runs go one at a time, each started after the previous one ended and a 20 ms pause, so the host
is idle and listening whenever an emit happens (as in the anchor). The anchor, in the same
repetition and the same process: raw PgQueuer, one job at a time, enqueue → handler start
(`bench/anchors/pgqueuer_latency.py`).
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from typing import Any

import psycopg

from bench.anchors import pgqueuer_latency
from bench.engine_drain import temporary_project
from bench.harness import Context, Measurement, percentile
from flowhost.engine.host import Host
from flowhost.engine.orchestrator import start_runs
from flowhost.project import Project

NAME = "emit_latency"
DESCRIPTION = "ctx.emit → subscribing step started, idle host, p50/p99 (in-process, Python child)"

GAP = 0.02
WARMUP = 20
FLOWS = {"inprocess": ', isolation="inprocess"', "child": ""}
SOURCE = """
import time
from flowhost_worker import step

@step(flow="emit_{label}", name="first", entry=True, emits=["first.done"]{options})
async def first(data, ctx):
    emitted_at = time.time()
    await ctx.emit("first.done", None)
    return emitted_at

@step(flow="emit_{label}", name="second", subscribes=["first.done"]{options})
async def second(events, ctx):
    return None
"""
LATENCIES = """
SELECT extract(epoch FROM started.ts) - (f.result)::float8 AS from_emit,
       extract(epoch FROM started.ts - completed.ts) AS from_completion
FROM flowhost.steps AS f
JOIN flowhost.events AS completed
  ON completed.run_id = f.run_id AND completed.type = 'step.completed' AND completed.step = 'first'
JOIN flowhost.events AS started
  ON started.run_id = f.run_id AND started.type = 'step.started' AND started.step = 'second'
WHERE f.name = 'first' AND f.run_id = ANY (%(runs)s::uuid[])
"""


async def one_by_one(project: Project, url: str, flow_name: str, runs: int) -> list[uuid.UUID]:
    """Start `runs` runs one after another, each once the previous one ended."""
    flow = project.catalog.flows[flow_name]
    ids = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as listener:
        await listener.execute("LISTEN flowhost_run_finished")
        for _ in range(runs):
            await asyncio.sleep(GAP)
            async with project.database.transaction() as conn:
                [run_id] = await start_runs(conn, flow, [None])
            ids.append(run_id)
            async with asyncio.timeout(10):
                async for note in listener.notifies():
                    if str(run_id) in note.payload:
                        break
    return ids


async def latencies(project: Project, run_ids: list[uuid.UUID]) -> tuple[list[float], list[float]]:
    """(emit → started, completion → started) in ms, per run."""
    async with project.database.connection() as conn:
        rows: list[dict[str, Any]] = await (
            await conn.execute(LATENCIES, {"runs": run_ids})
        ).fetchall()
    if len(rows) != len(run_ids):
        raise RuntimeError(f"emit latency: {len(rows)} of {len(run_ids)} runs were timed")
    return [r["from_emit"] * 1000 for r in rows], [r["from_completion"] * 1000 for r in rows]


async def run(ctx: Context) -> list[Measurement]:
    runs = ctx.size(300, quick=40)
    files = {
        f"{label}.py": SOURCE.format(label=label, options=options)
        for label, options in FLOWS.items()
    }
    measured: dict[str, list[float]] = {}
    async with ctx.fresh_database("engine") as url, temporary_project(url, files) as project:
        stop = asyncio.Event()
        serving = asyncio.create_task(Host(project).serve(stop))
        try:
            for label in FLOWS:
                ids = await one_by_one(project, url, f"emit_{label}", WARMUP + runs)
                from_emit, from_completion = await latencies(project, ids[WARMUP:])
                measured[label] = from_emit
                ctx.log(
                    f"{label}: emit → started p50 {statistics.median(from_emit):.2f} ms, "
                    f"p99 {percentile(from_emit, 0.99):.2f} ms; of which completion → started "
                    f"p50 {statistics.median(from_completion):.2f} ms, "
                    f"p99 {percentile(from_completion, 0.99):.2f} ms"
                )
        finally:
            stop.set()
            await serving
    async with ctx.fresh_database("pgqueuer") as url:
        anchor = await pgqueuer_latency(url, runs, gap=GAP, warmup=WARMUP)
    ctx.log(
        f"pgqueuer enqueue → start p50 {statistics.median(anchor):.2f} ms, "
        f"p99 {percentile(anchor, 0.99):.2f} ms"
    )
    return [
        Measurement(
            f"{label}_{name}_ms",
            percentile(values, fraction),
            "ms",
            higher_is_better=False,
            anchor=f"pgqueuer_enqueue_to_start_{name}_ms",
            anchor_value=percentile(anchor, fraction),
        )
        for label, values in measured.items()
        for name, fraction in (("p50", 0.5), ("p99", 0.99))
    ]
