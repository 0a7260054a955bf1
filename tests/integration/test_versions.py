"""Code versions: hosts run steps only of runs on the definition they serve; runs nobody
serves are parked, listed, and migrated (or refused); `flowhost dev` migrates its own runs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.host import Host
from flowhost.engine.orchestrator import start_runs
from flowhost.project import Project, open_project
from flowhost.settings import load_settings
from flowhost.store import reads, statistics, versions
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
    return "second from WHO"
"""


def other_definition(flow: FlowDefinition, **changes: Any) -> FlowDefinition:
    """The same flow with its entry step declared differently: another definition hash."""
    steps = dict(flow.steps)
    steps[flow.entry] = dataclasses.replace(steps[flow.entry], **changes)
    if "name" in changes:
        steps[changes["name"]] = steps.pop(flow.entry)
    entry = changes.get("name", flow.entry)
    return FlowDefinition(name=flow.name, entry=entry, steps=steps)


async def start_on(project: Project, flow: FlowDefinition, count: int = 1) -> list[uuid.UUID]:
    async with project.database.transaction() as conn:
        return await start_runs(conn, flow, [{}] * count)


async def until_served(project: Project, flow: FlowDefinition) -> None:
    """Wait until a live host records that it serves `flow`'s definition."""
    async with asyncio.timeout(20):
        while True:
            async with project.database.connection() as conn:
                if await reads.hosts_serving(conn, flow.name, flow.hash, stale_after=6):
                    return
            await asyncio.sleep(0.05)


async def picked_and_put_back(project: Project, run_id: uuid.UUID) -> None:
    """Wait until a host took the run's job and put it back (PgQueuer counts the attempt)."""
    async with asyncio.timeout(20):
        while True:
            async with project.database.connection() as conn:
                row = await (
                    await conn.execute(
                        "SELECT attempts FROM pgqueuer WHERE split_part(dedupe_key, ':', 1) = %s",
                        (str(run_id),),
                    )
                ).fetchone()
            if row is not None and row["attempts"] > 0:
                return
            await asyncio.sleep(0.05)


async def test_a_run_on_a_definition_nobody_serves_is_parked_until_migrated(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"two.py": TWO_STEPS})
    async with running_host(project_dir, database_url) as project:
        served = project.catalog.flows["two"]
        old = other_definition(served, attempts=3)
        assert old.hash != served.hash
        [run_id] = await start_on(project, old)
        await picked_and_put_back(project, run_id)
        async with project.database.connection() as conn:
            hosts = await (await conn.execute("SELECT definitions FROM flowhost.hosts")).fetchall()
            parked = await versions.parked_runs(conn, stale_after=6)
            steps = await reads.steps_of_run(conn, run_id)
            before = [e.type for e in await events_of_run(conn, run_id)]
        async with project.database.transaction() as conn:
            migration = await versions.adopt_served_definition(
                conn, flow="two", stale_after=6, run_ids=[run_id], by="test"
            )
        run = await wait_for_run(project, run_id, timeout=10)
        async with project.database.connection() as conn:
            events = await events_of_run(conn, run_id)
            after = await versions.parked_runs(conn, stale_after=6)

    assert hosts == [{"definitions": {"two": served.hash}}]
    assert [(p.id, p.flow, p.definition_hash, p.status) for p in parked] == [
        (run_id, "two", old.hash, "running")
    ]
    # Not run with the wrong code: the job went back, no attempt started.
    assert [s["status"] for s in steps] == ["queued"] and before == ["flow.started"]
    assert migration.moved == {run_id: old.hash} and migration.refused == {}
    assert run["status"] == "completed" and run["definition_hash"] == served.hash
    migrated = [e for e in events if e.type == "flow.migrated"]
    assert [(e.data["from"], e.data["to"], e.data["by"]) for e in migrated] == [
        (old.hash, served.hash, "test")
    ]
    assert after == []


async def test_a_run_whose_scheduled_step_is_gone_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"two.py": TWO_STEPS})
    async with running_host(project_dir, database_url) as project:
        served = project.catalog.flows["two"]
        old = other_definition(served, name="begin")
        [run_id] = await start_on(project, old)
        await until_served(project, served)
        async with project.database.transaction() as conn:
            migration = await versions.adopt_served_definition(
                conn, flow="two", stale_after=6, by="test"
            )
        async with project.database.connection() as conn:
            run = await reads.get_run(conn, run_id)
            parked = await versions.parked_runs(conn, stale_after=6, flow="two")
    assert migration.moved == {} and migration.refused == {run_id: ["begin"]}
    assert run["definition_hash"] == old.hash and run["status"] == "running"
    assert [p.id for p in parked] == [run_id]


async def test_each_host_runs_the_runs_of_its_own_definition(
    tmp_path: Path, database_url: str
) -> None:
    """Two hosts serve two definitions of one flow: a job picked by the wrong one goes back to
    the queue until the right one takes it."""
    dir_a = write_functions(tmp_path / "a", {"two.py": TWO_STEPS.replace("WHO", "A")})
    source_b = TWO_STEPS.replace("WHO", "B").replace(
        'isolation="inprocess")\nasync def second',
        'isolation="inprocess", attempts=2)\nasync def second',
    )
    dir_b = write_functions(tmp_path / "b", {"two.py": source_b})
    async with (
        running_host(dir_a, database_url, concurrency=4) as host_a,
        running_host(dir_b, database_url, concurrency=4) as host_b,
    ):
        flow_a, flow_b = host_a.catalog.flows["two"], host_b.catalog.flows["two"]
        assert flow_a.hash != flow_b.hash
        ids_a = await start_on(host_a, flow_a, 8)
        ids_b = await start_on(host_a, flow_b, 8)
        results = {
            run_id: (await wait_for_run(host_a, run_id))["result"] for run_id in ids_a + ids_b
        }
        async with host_a.database.connection() as conn:
            check = await statistics.rebuild_statistics(conn, write=False)
    assert {results[i] for i in ids_a} == {"second from A"}
    assert {results[i] for i in ids_b} == {"second from B"}
    assert check.differences == []


@contextlib.asynccontextmanager
async def dev_host(project_dir: Path, database_url: str) -> AsyncIterator[Project]:
    settings = load_settings(project_dir, environ={"DATABASE_URL": database_url})
    async with open_project(settings) as project:
        stop = asyncio.Event()
        task = asyncio.create_task(Host(project, watch=True).serve(stop))
        try:
            yield project
        finally:
            stop.set()
            await task


async def test_flowhost_dev_moves_a_run_onto_the_definition_it_serves(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"two.py": TWO_STEPS})
    async with dev_host(project_dir, database_url) as project:
        served = project.catalog.flows["two"]
        [run_id] = await start_on(project, other_definition(served, attempts=2))
        run = await wait_for_run(project, run_id, timeout=10)
        async with project.database.connection() as conn:
            events = await events_of_run(conn, run_id)
    assert run["status"] == "completed" and run["definition_hash"] == served.hash
    assert [e.data["by"] for e in events if e.type == "flow.migrated"] == ["flowhost dev"]
    assert [e.type for e in events].index("flow.migrated") < [e.type for e in events].index(
        "step.started"
    )


GATED = """
from pathlib import Path
import asyncio
from flowhost_worker import step

@step(flow="gated", name="first", entry=True, emits=["first.done"], isolation="inprocess")
async def first(data, ctx):
    while not Path(data["gate"]).exists():
        await asyncio.sleep(0.02)
    await ctx.emit("first.done", {})
    return "first"

@step(flow="gated", name="second", subscribes=["first.done"], isolation="inprocess"SECOND)
async def second(events, ctx):
    return "second"
"""


async def test_flowhost_dev_moves_runs_in_progress_when_functions_reload(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path / "p", {"gated.py": GATED.replace("SECOND", "")})
    gate = tmp_path / "gate"
    async with dev_host(project_dir, database_url) as project:
        before = project.catalog.flows["gated"].hash
        async with project.database.transaction() as conn:
            [run_id] = await start_runs(conn, project.catalog.flows["gated"], [{"gate": str(gate)}])
        (project_dir / "functions" / "gated.py").write_text(GATED.replace("SECOND", ", attempts=2"))
        async with asyncio.timeout(20):
            while project.catalog.flows["gated"].hash == before:
                await asyncio.sleep(0.05)
            while True:
                async with project.database.connection() as conn:
                    run = await reads.get_run(conn, run_id)
                if run["definition_hash"] != before:
                    break
                await asyncio.sleep(0.05)
        gate.touch()
        run = await wait_for_run(project, run_id, timeout=10)
        async with project.database.connection() as conn:
            events = await events_of_run(conn, run_id)
    assert run["status"] == "completed"
    assert run["definition_hash"] == project.catalog.flows["gated"].hash
    assert [(e.data["from"], e.data["by"]) for e in events if e.type == "flow.migrated"] == [
        (before, "flowhost dev")
    ]
