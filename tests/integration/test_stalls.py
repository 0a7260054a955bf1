"""Stall detection: which runs stall and which do not, what marking one writes, and the host's
own periodic check."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.engine.orchestrator import start_runs
from flowhost.engine.stall_timeouts import stall_timeout
from flowhost.engine.stalls import StallDetector
from flowhost.project import open_project
from flowhost.settings import load_settings
from flowhost.store import reads, runs, statistics, versions
from flowhost.store.events import events_of_run
from tests.support.engine import running_host, wait_for_run, write_functions

TWO_STEPS = """
from flowhost_worker import step

@step(flow="two", name="first", entry=True, emits=["first.done"], isolation="inprocess")
async def first(data, ctx):
    await ctx.emit("first.done", {})
    return "first"

@step(flow="two", name="second", subscribes=["first.done"], isolation="inprocess")
async def second(events, ctx):
    return "second"
"""


async def set_run(conn: Connection, run_id: uuid.UUID, sql: str, *params: Any) -> None:
    await conn.execute(sql, (*params, run_id))  # type: ignore[arg-type]


async def test_only_live_runs_without_activity_on_a_served_definition_stall(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"two.py": TWO_STEPS})
    settings = load_settings(project_dir, environ={"DATABASE_URL": database_url})
    async with open_project(settings) as project:
        flow = project.catalog.flows["two"]
        async with project.database.transaction() as conn:
            ids = await start_runs(conn, flow, [{}] * 6)
            quiet, recent, parked, awaiting, busy, hung = ids
            await versions.register_definitions(
                conn, [versions.FlowVersion("two", flow.hash, flow.to_json(), stall_timeout(flow))]
            )
            # A host serves the definition, and has for a day.
            await conn.execute(
                QUERIES["host_alive"],
                {
                    "id": uuid.uuid4(),
                    "hostname": "h",
                    "pid": 1,
                    "flows": ["two"],
                    "definitions": Jsonb({"two": flow.hash}),
                },
            )
            await conn.execute("UPDATE flowhost.hosts SET started_at = now() - interval '1 day'")
            old = "UPDATE flowhost.runs SET last_activity_at = now() - interval '2 hours' "
            await conn.execute(old + "WHERE id <> %s", (recent,))
            await set_run(
                conn, parked, "UPDATE flowhost.runs SET definition_hash = 'x' WHERE id = %s"
            )
            await set_run(
                conn, awaiting, "UPDATE flowhost.runs SET status = 'awaiting' WHERE id = %s"
            )
            # An awaiting run waits on an await row; it is its own clock, not the run's activity.
            await set_run(
                conn,
                awaiting,
                "INSERT INTO flowhost.awaits (run_id, step, position, type, config) "
                "VALUES (%s, 'b', 'before', 'event', '{}')",
            )
            # `busy` started its step a minute ago; `hung` an hour ago (past the 15 min timeout).
            step = (
                "UPDATE flowhost.steps SET status = 'running', "
                "started_at = now() - %s::interval WHERE run_id = %s"
            )
            await set_run(conn, busy, step, "1 minute")
            await set_run(conn, hung, step, "1 hour")
            # The statuses changed just now count as activity (the runs_touch trigger).
            await conn.execute(old + "WHERE id = ANY (%s)", ([awaiting],))
        stalled = await StallDetector(project.database, settings).check()
        again = await StallDetector(project.database, settings).check()
        async with project.database.connection() as conn:
            statuses = {i: (await reads.get_run(conn, i))["status"] for i in ids}
            events = {i: await events_of_run(conn, i) for i in (quiet, hung)}
            listed = await reads.list_runs(conn, status="stalled")
            claim = await runs.claim_steps(conn, [(quiet, "first", 1, flow.hash)], stale_after=6)
            [stats] = await statistics.flow_statistics(conn, "two")
            parked_runs = await versions.parked_runs(conn, stale_after=6)

    assert sorted(run.id for run in stalled) == sorted([quiet, hung])
    assert again == []
    assert statuses == {
        quiet: "stalled",
        recent: "running",
        parked: "running",
        awaiting: "awaiting",
        busy: "running",
        hung: "stalled",
    }
    flow_stalled = [e for e in events[quiet] if e.type == "flow.stalled"]
    assert len(flow_stalled) == 1
    assert flow_stalled[0].data["previous_status"] == "running"
    assert "stall timeout (900 s)" in flow_stalled[0].data["reason"]
    assert [(e.step, e.data["status"]) for e in events[quiet] if e.type == "step.stalled"] == [
        ("first", "queued")
    ]
    assert [(e.step, e.data["status"]) for e in events[hung] if e.type == "step.stalled"] == [
        ("first", "running")
    ]
    assert {row["id"] for row in listed} == {quiet, hung}
    assert claim == {}  # the stalled run's queued job is stale
    assert (stats["stalled"], stats["running"], stats["awaiting"]) == (2, 3, 1)
    assert [run.id for run in parked_runs] == [parked]


async def test_a_host_stalls_a_run_whose_job_was_lost_a_timeout_after_it_started(
    tmp_path: Path, database_url: str
) -> None:
    """The clock of a run starts again when a host comes to serve it: a run started while no
    host ran gets its full timeout once one does."""
    project_dir = write_functions(tmp_path, {"two.py": TWO_STEPS})
    settings = load_settings(project_dir, environ={"DATABASE_URL": database_url})
    async with open_project(settings) as project, project.database.transaction() as conn:
        [run_id] = await start_runs(conn, project.catalog.flows["two"], [{}])
        await conn.execute("UPDATE flowhost.runs SET last_activity_at = now() - interval '1 day'")
        await conn.execute("DELETE FROM pgqueuer WHERE entrypoint = 'flow:two'")
    begun = time.monotonic()
    async with running_host(
        project_dir, database_url, stall_timeout=1.0, stall_check_interval=0.1
    ) as project:
        run = await wait_for_run(project, run_id, timeout=20)
        waited = time.monotonic() - begun
        async with project.database.connection() as conn:
            events = await events_of_run(conn, run_id)
            check = await statistics.rebuild_statistics(conn, write=False)
    assert run["status"] == "stalled"
    assert run["error"]["type"] == "RunStalled"
    assert waited >= 1.0
    assert [e.type for e in events] == ["flow.started", "step.stalled", "flow.stalled"]
    assert check.differences == []


async def test_an_attempt_running_when_its_run_stalls_is_stopped_and_moves_nothing(
    tmp_path: Path, database_url: str
) -> None:
    source = TWO_STEPS.replace(
        "async def first(data, ctx):\n",
        "async def first(data, ctx):\n"
        "    import asyncio\n"
        "    try:\n"
        "        await asyncio.sleep(30)\n"
        "    except asyncio.CancelledError:\n"
        "        await ctx.state.set('stopped', True)\n"
        "        raise\n",
    )
    project_dir = write_functions(tmp_path, {"two.py": source})
    async with running_host(
        project_dir, database_url, stall_timeout=60.0, stall_check_interval=0.1
    ) as project:
        async with project.database.transaction() as conn:
            [run_id] = await start_runs(conn, project.catalog.flows["two"], [{}])
        async with asyncio.timeout(20):
            while True:  # the attempt runs
                async with project.database.connection() as conn:
                    [first] = await reads.steps_of_run(conn, run_id)
                if first["status"] == "running":
                    break
                await asyncio.sleep(0.05)
        async with project.database.transaction() as conn:
            # An hour of silence: the run, its attempt and the host are that old.
            await conn.execute("UPDATE flowhost.runs SET last_activity_at = now() - interval '1h'")
            await conn.execute("UPDATE flowhost.steps SET started_at = now() - interval '1h'")
            await conn.execute("UPDATE flowhost.hosts SET started_at = now() - interval '1h'")
        run = await wait_for_run(project, run_id, timeout=20)
        assert run["status"] == "stalled"
        async with asyncio.timeout(20):
            while True:  # the host hears of the stall and stops the attempt
                async with project.database.connection() as conn:
                    if (await reads.state_of_run(conn, run_id)).get("stopped"):
                        break
                await asyncio.sleep(0.05)
        async with project.database.connection() as conn:
            after = await reads.get_run(conn, run_id)
            steps = {s["name"]: s["status"] for s in await reads.steps_of_run(conn, run_id)}
            types = [e.type for e in await events_of_run(conn, run_id)]
            check = await statistics.rebuild_statistics(conn, write=False)
    assert after["status"] == "stalled"
    # Nothing of the stopped attempt is recorded; its step stays running for a retry.
    assert steps == {"first": "running"}
    assert types.count("step.stalled") == 1
    assert "step.completed" not in types and "step.failed" not in types
    assert check.differences == []
