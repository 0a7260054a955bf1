"""Flow and step statistics: counted by the database under concurrency, equal to what the
event log says, and rebuilt from it."""

from __future__ import annotations

import asyncio
import statistics as pystats
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Database
from flowhost.engine import control
from flowhost.engine.starting import StartOptions, start_run
from flowhost.project import Project
from flowhost.store import statistics
from tests.support.engine import running_host, start, wait_for_run, write_functions

# Every kind of run: completed, completed after a retry, failed after its retries, canceled by
# its own step. `skip` waits on an event no run emits: it is skipped in every run that goes on.
MIXED = """
from flowhost_worker import step

@step(flow="mixed", name="begin", entry=True, emits=["go.work", "go.skip"],
      isolation="inprocess")
async def begin(data, ctx):
    if data["kind"] == "cancel":
        await ctx.flow.cancel()
    await ctx.emit("go.work", data)
    return data["kind"]

@step(flow="mixed", name="work", subscribes=["go.work"], attempts=2, backoff=0.01,
      isolation="inprocess")
async def work(events, ctx):
    kind = events["go.work"]["kind"]
    if kind == "fail" or (kind == "retry" and ctx.attempt == 1):
        raise RuntimeError(f"{kind} on attempt {ctx.attempt}")
    return "worked"

@step(flow="mixed", name="skip", subscribes=["go.skip"], isolation="inprocess")
async def skip(events, ctx):
    return "never"
"""

KINDS = ["ok"] * 12 + ["retry"] * 8 + ["fail"] * 6 + ["cancel"] * 4


async def run_mixed_workload(project: Project, other: Project) -> dict[uuid.UUID, str]:
    """Start every kind of run at once and wait for them all (two hosts share the work)."""
    ids = await asyncio.gather(*(start(project, "mixed", {"kind": kind}) for kind in KINDS))
    ended = await asyncio.gather(*(wait_for_run(other, run_id) for run_id in ids))
    return {run_id: run["status"] for run_id, run in zip(ids, ended, strict=True)}


async def query(database: Database, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with database.connection() as conn:
        return await (await conn.execute(sql, params)).fetchall()  # type: ignore[arg-type]


async def test_a_mixed_workload_counts_equal_the_events_and_the_runs(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"mixed.py": MIXED})
    async with (
        running_host(project_dir, database_url, concurrency=8) as project,
        running_host(project_dir, database_url, concurrency=8) as other,
    ):
        statuses = await run_mixed_workload(project, other)
        async with project.database.connection() as conn:
            check = await statistics.rebuild_statistics(conn, write=False)
            [flow] = await statistics.flow_statistics(conn, "mixed")
            steps = {row["step"]: row for row in await statistics.step_statistics(conn, "mixed")}
            percentiles = await statistics.duration_percentiles(conn, "mixed")
        runs = await query(
            project.database,
            "SELECT flowhost.duration_ms(created_at, finished_at) AS ms FROM flowhost.runs "
            "WHERE status = 'completed'",
        )

    assert Counter(statuses.values()) == {"completed": 20, "failed": 6, "canceled": 4}
    assert check.differences == []
    assert (check.flows, check.steps) == (1, 3)
    counts = {k: flow[k] for k in ("total", "queued", "running", "awaiting", "stalled")}
    assert counts == {"total": 30, "queued": 0, "running": 0, "awaiting": 0, "stalled": 0}
    assert (flow["completed"], flow["failed"], flow["canceled"]) == (20, 6, 4)
    durations = [row["ms"] for row in runs]
    assert flow["total_duration_ms"] == sum(durations)
    assert flow["max_duration_ms"] == max(durations)
    assert percentiles["runs"] == 20
    assert percentiles["p50"] == pystats.quantiles(durations, n=100, method="inclusive")[49]

    figures = {
        name: (row["completed"], row["failed"], row["retried"], row["skipped"])
        for name, row in steps.items()
    }
    # A step that cancels its own run is stopped with it: nothing of it is recorded.
    assert figures == {"begin": (26, 0, 0, 0), "work": (20, 6, 14, 0), "skip": (0, 0, 0, 26)}
    assert steps["work"]["max_duration_ms"] > 0
    assert steps["work"]["last_finished_at"] is not None


async def test_rebuild_replaces_wrong_numbers_with_the_events_numbers(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"mixed.py": MIXED})
    async with running_host(project_dir, database_url) as project:
        await run_mixed_workload(project, project)
        async with project.database.connection() as conn:
            [before] = await statistics.flow_statistics(conn, "mixed")
            await conn.execute(
                "UPDATE flowhost.flow_stats SET completed = 999, running = -3, max_duration_ms = 1"
            )
            await conn.execute("UPDATE flowhost.step_stats SET retried = 0 WHERE step = 'work'")
            await conn.execute(
                "INSERT INTO flowhost.step_stats (flow, step, completed) VALUES ('gone', 'x', 5)"
            )
            check = await statistics.rebuild_statistics(conn, write=False)
            rebuild = await statistics.rebuild_statistics(conn)
            again = await statistics.rebuild_statistics(conn, write=False)
            [after] = await statistics.flow_statistics(conn, "mixed")
            gone = await statistics.step_statistics(conn, "gone")

    found = {(d.table, d.key, d.column, d.kept, d.rebuilt) for d in check.differences}
    assert found == {
        ("flow_stats", "mixed", "completed", 999, 20),
        ("flow_stats", "mixed", "running", -3, None),
        ("flow_stats", "mixed", "max_duration_ms", 1, before["max_duration_ms"]),
        ("step_stats", "mixed/work", "retried", None, 14),
        ("step_stats", "gone/x", "completed", 5, None),
    }
    assert rebuild.written and {str(d) for d in rebuild.differences} == {
        str(d) for d in check.differences
    }
    assert again.differences == []
    assert after == before
    assert gone == []


async def test_the_trigger_counts_every_status_change_of_a_statement(database: Database) -> None:
    """Whatever writes runs, in one statement or many, for several flows at once."""

    def counts(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        keys = ("total", "queued", "running", "awaiting", "completed", "failed", "stalled")
        return {row["flow"]: {k: row[k] for k in keys if row[k]} for row in rows}

    insert = """
        INSERT INTO flowhost.runs (id, flow, status, input, definition_hash)
        SELECT gen_random_uuid(), flow, status, '{}', 'h'
        FROM (VALUES ('a', 'running'), ('a', 'running'), ('a', 'queued'), ('b', 'awaiting'),
                     ('b', 'running')) AS v (flow, status)"""
    async with database.connection() as conn:
        await conn.execute(insert)
        inserted = counts(await statistics.flow_statistics(conn))
        # queued -> running, running <-> awaiting, across both flows in one statement.
        await conn.execute(
            "UPDATE flowhost.runs SET status = CASE status WHEN 'queued' THEN 'running' "
            "WHEN 'running' THEN 'awaiting' ELSE 'running' END"
        )
        moved = counts(await statistics.flow_statistics(conn))
        await conn.execute(
            "UPDATE flowhost.runs SET status = 'failed', finished_at = clock_timestamp() "
            "WHERE flow = 'a' AND status = 'awaiting'"
        )
        # A failed run retried (failed -> running); a name-only update moves nothing.
        await conn.execute(
            "UPDATE flowhost.runs SET status = 'running', finished_at = NULL "
            "WHERE id = (SELECT id FROM flowhost.runs WHERE status = 'failed' LIMIT 1)"
        )
        await conn.execute("UPDATE flowhost.runs SET version = version + 1")
        retried = counts(await statistics.flow_statistics(conn))
        await conn.execute(
            "UPDATE flowhost.runs SET status = 'completed', "
            "finished_at = created_at + interval '1.5 seconds' WHERE flow = 'b'"
        )
        [b] = await statistics.flow_statistics(conn, "b")
        await conn.execute("DELETE FROM flowhost.runs WHERE flow = 'a'")
        deleted = counts(await statistics.flow_statistics(conn))

    assert inserted == {
        "a": {"total": 3, "running": 2, "queued": 1},
        "b": {"total": 2, "running": 1, "awaiting": 1},
    }
    assert moved == {
        "a": {"total": 3, "awaiting": 2, "running": 1},
        "b": {"total": 2, "running": 1, "awaiting": 1},
    }
    assert retried == {
        "a": {"total": 3, "running": 2, "failed": 1},
        "b": {"total": 2, "running": 1, "awaiting": 1},
    }
    assert (b["completed"], b["total_duration_ms"], b["max_duration_ms"]) == (2, 3000, 1500)
    assert b["last_completed_at"] is not None
    assert deleted == {"a": {}, "b": {"total": 2, "completed": 2}}


async def test_retried_restarted_and_replayed_runs_count_what_their_events_say(
    tmp_path: Path, database_url: str
) -> None:
    """Run control moves runs between statuses (failed -> running -> failed on a retry) and
    copies history into new runs (replay): the counts still equal the events'."""
    project_dir = write_functions(tmp_path, {"mixed.py": MIXED})
    async with running_host(project_dir, database_url) as project:
        statuses = await run_mixed_workload(project, project)
        failed = [run_id for run_id, status in statuses.items() if status == "failed"][:2]
        completed = [run_id for run_id, status in statuses.items() if status == "completed"]
        flows = project.catalog.flows
        async with project.database.transaction() as conn:
            for run_id in failed:
                await control.retry_run(conn, run_id, flows, by="test")
            restarted = await control.restart_run(conn, completed[0], flows, by="test")
            replayed = await control.replay_run(conn, completed[1], "work", flows, by="test")
        again = [
            await wait_for_run(project, run_id)
            for run_id in [*failed, restarted.run_id, replayed.run_id]
        ]
        async with project.database.connection() as conn:
            check = await statistics.rebuild_statistics(conn, write=False)
            [flow] = await statistics.flow_statistics(conn, "mixed")
            steps = {row["step"]: row for row in await statistics.step_statistics(conn, "mixed")}

    assert [run["status"] for run in again] == ["failed", "failed", "completed", "completed"]
    assert check.differences == []
    assert (flow["total"], flow["completed"], flow["failed"], flow["running"]) == (32, 22, 6, 0)
    # The retries ran `work` twice more (one retry, one failure each); the replay reused
    # `begin` (not counted again) and ran `work` once.
    assert (steps["work"]["failed"], steps["work"]["retried"]) == (6 + 2, 14 + 2)
    assert steps["begin"]["completed"] == 26 + 1
    assert steps["work"]["completed"] == 20 + 2


async def test_the_rebuild_counts_a_run_awaiting_while_one_of_its_awaits_is_open(
    database: Database,
) -> None:
    """Run statuses from lifecycle events, refined by awaits opened and not closed since."""
    stories = {
        "awaiting": ["flow.started", "await.registered", "await.registered", "await.resolved"],
        "running": ["flow.started", "await.registered", "await.timed_out"],
        "failed": ["flow.started", "await.registered", "flow.failed"],
        # Retried after failing with an await open: the canceled await no longer counts.
        "retried": ["flow.started", "await.registered", "flow.failed", "flow.retried"],
        "completed": ["flow.started", "flow.completed"],
    }
    status_of = {"retried": "running"}
    async with database.connection() as conn:
        for story, types in stories.items():
            run_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO flowhost.runs (id, flow, status, input, definition_hash) "
                "VALUES (%s, 'f', %s, '{}', 'h')",
                (run_id, status_of.get(story, story)),
            )
            for kind in types:
                data = {"flow": "f"} if kind == "flow.started" else {}
                await conn.execute(
                    "INSERT INTO flowhost.events (run_id, type, data) VALUES (%s, %s, %s)",
                    (run_id, kind, Jsonb(data)),
                )
        check = await statistics.rebuild_statistics(conn, write=False)
        [kept] = await statistics.flow_statistics(conn, "f")
    # (The rows here carry no real times: only the counts are compared.)
    counted = ("total", "running", "awaiting", "failed", "completed")
    assert [d for d in check.differences if d.column in counted] == []
    counts = {k: kept[k] for k in ("running", "awaiting", "failed", "completed")}
    assert counts == {"running": 2, "awaiting": 1, "failed": 1, "completed": 1}


LIMITED = """
import asyncio
from flowhost_worker import step

@step(flow="limited", name="only", entry=True, max_runs=1, isolation="inprocess")
async def only(data, ctx):
    await asyncio.sleep(0.05)
    return data
"""


async def test_runs_that_wait_for_a_slot_and_delayed_runs_count_what_their_events_say(
    tmp_path: Path, database_url: str
) -> None:
    """Flow control: runs created queued (a slot, a start time) and admitted later."""
    project_dir = write_functions(tmp_path, {"limited.py": LIMITED})
    async with running_host(project_dir, database_url) as project:
        flow = project.catalog.flows["limited"]
        ids = await asyncio.gather(*(start(project, "limited", n) for n in range(6)))
        async with project.database.transaction() as conn:
            delayed = await start_run(conn, flow, "later", StartOptions(delay=0.3))
        async with project.database.connection() as conn:
            while_waiting = await statistics.rebuild_statistics(conn, write=False)
        ended = [await wait_for_run(project, run_id) for run_id in [*ids, delayed.run_id]]
        async with project.database.connection() as conn:
            check = await statistics.rebuild_statistics(conn, write=False)
            [kept] = await statistics.flow_statistics(conn, "limited")
            waited = await query(
                project.database,
                "SELECT count(*) AS n FROM flowhost.events WHERE type = 'flow.waiting'",
            )
    assert {run["status"] for run in ended} == {"completed"}
    assert waited[0]["n"] >= 2  # some runs waited for the slot, one for its time
    assert while_waiting.differences == [] and check.differences == []
    assert (kept["total"], kept["completed"], kept["queued"], kept["running"]) == (7, 7, 0, 0)
