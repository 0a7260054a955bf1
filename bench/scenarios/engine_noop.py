"""No-op in-process steps through the full flowhost engine, beside raw PgQueuer.

Runs of a four-step chain (`first → second → third → fourth`, each step emitting the event the
next one subscribes to) are started untimed; then a host drains them. Every step is one PgQueuer
job plus flowhost's work around it: claim, events (step.started, emit, step.completed), the run
index, readiness of the next step and its enqueue, all in Postgres. The anchor drains the same
number of bare PgQueuer jobs in its own fresh database, in the same repetition.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import psycopg

from bench.anchors import pgqueuer_drain
from bench.harness import Context, Measurement
from flowhost.engine.host import Host
from flowhost.engine.orchestrator import start_runs
from flowhost.project import open_project
from flowhost.settings import load_settings

NAME = "engine_noop"
DESCRIPTION = "no-op in-process steps through the flowhost engine (4-step chains) vs raw PgQueuer"

STEPS = ("first", "second", "third", "fourth")
START_BATCH = 500

# Runs finish late (a FIFO queue runs every first step before any fourth), so the steady rate
# comes from step completion times, recorded by Postgres.
STEADY_RATE = """
WITH marks AS (
    SELECT count(*) AS n,
           percentile_disc(%(low)s) WITHIN GROUP (ORDER BY finished_at) AS low,
           percentile_disc(%(high)s) WITHIN GROUP (ORDER BY finished_at) AS high
    FROM flowhost.steps WHERE status = 'completed'
)
SELECT n * (%(high)s - %(low)s) / NULLIF(extract(epoch FROM high - low), 0) AS rate FROM marks
"""


def chain_source() -> str:
    lines = ["from flowhost_worker import step", ""]
    for index, name in enumerate(STEPS):
        emits = f"emits=['{name}.done']" if index < len(STEPS) - 1 else "emits=[]"
        role = "entry=True" if index == 0 else f"subscribes=['{STEPS[index - 1]}.done']"
        body = f"    await ctx.emit('{name}.done', None)\n" if index < len(STEPS) - 1 else ""
        lines += [
            f"@step(flow='chain', name='{name}', {role}, {emits})",
            f"async def {name}(data, ctx):",
            body + "    return None",
            "",
        ]
    return "\n".join(lines)


async def drain_through_engine(url: str, steps: int) -> tuple[float, float]:
    """Returns (steps/s from host start to the last run finished, steady steps/s between the
    10 % and 90 % step completion marks, as the anchor's steady rate)."""
    runs = steps // len(STEPS)
    with tempfile.TemporaryDirectory(prefix="fh-bench-") as root:
        project_dir = Path(root)
        (project_dir / "functions").mkdir()
        (project_dir / "functions" / "chain.py").write_text(chain_source())
        settings = load_settings(project_dir, environ={"DATABASE_URL": url})
        async with open_project(settings) as project:
            flow = project.catalog.flows["chain"]
            for offset in range(0, runs, START_BATCH):
                async with project.database.transaction() as conn:
                    await start_runs(conn, flow, [None] * min(START_BATCH, runs - offset))
            finished: list[float] = []
            all_done = asyncio.Event()
            listener = await psycopg.AsyncConnection.connect(url, autocommit=True)
            await listener.execute("LISTEN flowhost_run_finished")

            async def count() -> None:
                async for _ in listener.notifies():
                    finished.append(time.perf_counter())
                    if len(finished) == runs:
                        all_done.set()
                        return

            counter = asyncio.create_task(count())
            stop = asyncio.Event()
            started = time.perf_counter()
            serving = asyncio.create_task(Host(project).serve(stop))
            await all_done.wait()
            stop.set()
            await serving
            await counter
            await listener.close()
            async with project.database.connection() as conn:
                cursor = await conn.execute(STEADY_RATE, {"low": 0.1, "high": 0.9})
                steady = (await cursor.fetchone() or {}).get("rate")
    total = finished[-1] - started
    return runs * len(STEPS) / total, float(steady or 0.0)


async def run(ctx: Context) -> list[Measurement]:
    steps = ctx.size(20_000, quick=2_000)
    async with ctx.fresh_database("engine") as url:
        engine, engine_steady = await drain_through_engine(url, steps)
    async with ctx.fresh_database("pgqueuer") as url:
        anchor = await pgqueuer_drain(url, steps)
    return [
        Measurement(
            "steps_per_s",
            engine,
            "steps/s",
            anchor="pgqueuer_drain",
            anchor_value=anchor.jobs_per_s,
        ),
        Measurement(
            "steady_steps_per_s",
            engine_steady,
            "steps/s",
            anchor="pgqueuer_drain_steady",
            anchor_value=anchor.steady_jobs_per_s,
        ),
    ]
