"""Drain runs through a real host, timed: shared by the engine and worker scenarios."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from flowhost.engine.host import Host
from flowhost.engine.orchestrator import start_runs
from flowhost.project import Project, open_project
from flowhost.settings import load_settings

START_BATCH = 500

Beside = Callable[[Project, list[uuid.UUID]], contextlib.AbstractAsyncContextManager[None]]

# Runs finish late (a FIFO queue runs every first step before any fourth), so the steady rate
# comes from step completion times, recorded by Postgres.
STEADY_RATE = """
WITH marks AS (
    SELECT count(*) AS n,
           percentile_disc(%(low)s) WITHIN GROUP (ORDER BY s.finished_at) AS low,
           percentile_disc(%(high)s) WITHIN GROUP (ORDER BY s.finished_at) AS high
    FROM flowhost.steps AS s JOIN flowhost.runs AS r ON r.id = s.run_id
    WHERE s.status = 'completed' AND r.flow = %(flow)s
)
SELECT n * (%(high)s - %(low)s) / NULLIF(extract(epoch FROM high - low), 0) AS rate FROM marks
"""


@contextlib.asynccontextmanager
async def temporary_project(
    url: str, files: dict[str, str], **settings: Any
) -> AsyncIterator[Project]:
    """A project of `files` (name -> source, under functions/) on the database at `url`, with
    its schema applied and its functions discovered; no host yet."""
    with tempfile.TemporaryDirectory(prefix="fh-bench-") as root:
        project_dir = Path(root)
        (project_dir / "functions").mkdir()
        for name, source in files.items():
            (project_dir / "functions" / name).write_text(source)
        loaded = load_settings(project_dir, environ={"DATABASE_URL": url}, **settings)
        async with open_project(loaded) as project:
            if project.catalog.problems:
                raise RuntimeError(f"bench functions are invalid: {project.catalog.problems}")
            yield project


async def vacuum_analyze(url: str) -> None:
    """VACUUM ANALYZE every table of the flowhost schema."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        tables = await (
            await conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'flowhost' ORDER BY 1"
            )
        ).fetchall()
        for (table,) in tables:
            await conn.execute(
                sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier("flowhost", table))
            )


async def drain_through_engine(
    url: str,
    files: dict[str, str],
    flow_name: str,
    runs: int,
    steps_per_run: int,
    *,
    prepare: Callable[[Project], Awaitable[None]] | None = None,
    analyze: bool = False,
    beside: Beside | None = None,
    **settings: Any,
) -> tuple[float, float]:
    """Start `runs` runs of `flow_name` (defined by `files` under functions/), then drain them
    with a host. Returns (steps/s from host start to the last run finished, steady steps/s
    between the 10 % and 90 % step completion marks, as the anchor's steady rate).
    `prepare(project)`, if given, runs first (untimed): to load the database, say. With
    `analyze`, flowhost's tables are vacuumed and analyzed once the runs are started (untimed),
    so that the planner works from statistics of what is there, as it would in a database
    that has been running a while, not from a fresh database's defaults. `beside(project,
    run_ids)`, if given, is entered once the runs are started and before the host starts
    (untimed), and left after the drain: what runs beside the host meanwhile (an HTTP server
    with open event streams, say)."""
    async with temporary_project(url, files, **settings) as project:
        if prepare is not None:
            await prepare(project)
        flow = project.catalog.flows[flow_name]
        run_ids: list[uuid.UUID] = []
        for offset in range(0, runs, START_BATCH):
            async with project.database.transaction() as conn:
                run_ids += await start_runs(conn, flow, [None] * min(START_BATCH, runs - offset))
        if analyze:
            await vacuum_analyze(url)
        async with contextlib.AsyncExitStack() as stack:
            if beside is not None:
                await stack.enter_async_context(beside(project, run_ids))
            return await _drain(project, url, flow_name, runs, steps_per_run)


async def _drain(
    project: Project, url: str, flow_name: str, runs: int, steps_per_run: int
) -> tuple[float, float]:
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
        cursor = await conn.execute(STEADY_RATE, {"low": 0.1, "high": 0.9, "flow": flow_name})
        steady = (await cursor.fetchone() or {}).get("rate")
    total = finished[-1] - started
    return runs * steps_per_run / total, float(steady or 0.0)
