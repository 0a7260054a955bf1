"""Flow control in Postgres: limits that hold across hosts, fair waiting lists, priorities,
delayed, deduplicated and debounced starts. Several in-process hosts on one database count as
several hosts: they share nothing but Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from flowhost.db.database import Database
from flowhost.engine.control import cancel_run
from flowhost.engine.host import Host
from flowhost.engine.starting import StartedRun, StartOptions, start_run
from flowhost.project import Project, open_project
from flowhost.queue.jobs import StepJob, decode_job
from flowhost.settings import load_settings
from flowhost.store import reads
from flowhost.store.events import events_of_run
from tests.support.engine import running_host, wait_for_run, write_functions

FUNCTIONS = {
    "limited.py": """
import asyncio
from flowhost_worker import step

# A step limit of 2, on every host together.
@step(flow="limited", name="fan", entry=True, emits=["go"], isolation="inprocess")
async def fan(data, ctx):
    await ctx.emit("go", data)
    return data

@step(flow="limited", name="work", subscribes=["go"], concurrency=2, isolation="inprocess")
async def work(events, ctx):
    await asyncio.sleep(0.15)
    return events["go"]
""",
    "solo.py": """
import asyncio
from flowhost_worker import step

# At most 2 runs live at once; each takes a while.
@step(flow="pair", entry=True, max_runs=2, isolation="inprocess")
async def pair(data, ctx):
    await asyncio.sleep(0.1)
    return data

# One run at a time, shared round-robin between tenants; fast.
@step(flow="fair", entry=True, max_runs=1, concurrency_key="/tenant", isolation="inprocess")
async def fair(data, ctx):
    return data

# One run per tenant at a time, any number of tenants at once.
@step(flow="tenants", entry=True, concurrency_key="/tenant", key_concurrency=1,
      isolation="inprocess")
async def tenants(data, ctx):
    await asyncio.sleep(0.1)
    return data

# One run at a time, running until it is canceled.
@step(flow="blocking", entry=True, max_runs=1, isolation="inprocess")
async def blocking(data, ctx):
    while await ctx.flow.is_running(run_id=ctx.run_id):
        await asyncio.sleep(0.02)
    return data

# One run at a time; its step (limited too) fails on its first attempt when asked to.
@step(flow="fragile", entry=True, max_runs=1, concurrency=1, isolation="inprocess")
async def fragile(data, ctx):
    if data.get("fail") and ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return data

# No limits: starts are delayed, deduplicated or debounced by their options.
@step(flow="plain", entry=True, emits=["next"], isolation="inprocess")
async def plain(data, ctx):
    await ctx.emit("next", data)
    return data

@step(flow="plain", name="after", subscribes=["next"], isolation="inprocess")
async def after(events, ctx):
    return events["next"]
""",
}


@contextlib.asynccontextmanager
async def project_of(tmp_path: Path, database_url: str) -> AsyncIterator[Project]:
    """The project, with no host serving it (runs started now wait in the database)."""
    write_functions(tmp_path, FUNCTIONS)
    settings = load_settings(tmp_path, environ={"DATABASE_URL": database_url})
    async with open_project(settings) as project:
        yield project


@contextlib.asynccontextmanager
async def hosts(project: Project, count: int = 1) -> AsyncIterator[None]:
    """`count` hosts serving `project`'s flows on its database until the block ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(Host(project).serve(stop)) for _ in range(count)]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def start(
    project: Project, flow: str, data: Any, options: StartOptions | None = None
) -> StartedRun:
    async with project.database.transaction() as conn:
        return await start_run(conn, project.catalog.flows[flow], data, options)


async def wait_all(project: Project, run_ids: Sequence[uuid.UUID], timeout: float = 60) -> None:
    for run_id in run_ids:
        run = await wait_for_run(project, run_id, timeout)
        assert run["status"] == "completed", run


async def rows(project: Project, query: str, *params: Any) -> list[dict[str, Any]]:
    async with project.database.connection() as conn:
        return await (await conn.execute(query, params)).fetchall()  # type: ignore[arg-type]


def max_overlap(intervals: Sequence[tuple[datetime.datetime, datetime.datetime]]) -> int:
    """The most intervals open at one instant (an end before a start at the same instant)."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    open_now = most = 0
    for _, change in points:
        open_now += change
        most = max(most, open_now)
    return most


async def step_times(project: Project, flow: str, step: str) -> list[tuple[Any, Any]]:
    found = await rows(
        project,
        "SELECT s.started_at, s.finished_at FROM flowhost.steps s "
        "JOIN flowhost.runs r ON r.id = s.run_id WHERE r.flow = %s AND s.name = %s",
        flow,
        step,
    )
    return [(r["started_at"], r["finished_at"]) for r in found]


async def assert_nothing_held(project: Project) -> None:
    """Every slot is back: counters at zero, no holder, nobody waiting."""
    held = await rows(project, "SELECT flow, step, key, held FROM flowhost.flow_slots")
    assert [r for r in held if r["held"] != 0] == []
    assert await rows(project, "SELECT * FROM flowhost.flow_holds") == []
    assert await rows(project, "SELECT * FROM flowhost.flow_waiters") == []


async def test_a_step_limit_of_two_holds_across_three_hosts(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project, hosts(project, 3):
        started = [await start(project, "limited", {"n": n}) for n in range(12)]
        await wait_all(project, [s.run_id for s in started])
        times = await step_times(project, "limited", "work")
        waited = await rows(
            project, "SELECT count(*) AS n FROM flowhost.events WHERE type = 'step.waiting'"
        )
        await assert_nothing_held(project)
    assert len(times) == 12
    # Three hosts with 100 steps each at once would run all twelve together.
    assert max_overlap(times) == 2
    assert waited[0]["n"] >= 1


async def test_max_runs_bounds_live_runs_and_the_waiting_ones_start_in_turn(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project:
        started = [await start(project, "pair", {"n": n}) for n in range(8)]
        statuses = await rows(
            project, "SELECT status, count(*) AS n FROM flowhost.runs GROUP BY status"
        )
        assert {r["status"]: r["n"] for r in statuses} == {"running": 2, "queued": 6}
        async with hosts(project, 2):
            await wait_all(project, [s.run_id for s in started])
        lives = await rows(
            project,
            "SELECT s.started_at, r.finished_at FROM flowhost.runs r "
            "JOIN flowhost.steps s ON s.run_id = r.id WHERE r.flow = 'pair'",
        )
        async with project.database.connection() as conn:
            events = await events_of_run(conn, started[-1].run_id)
        stats = await rows(
            project,
            "SELECT queued, running, completed FROM flowhost.flow_stats WHERE flow = 'pair'",
        )
        await assert_nothing_held(project)
    assert max_overlap([(r["started_at"], r["finished_at"]) for r in lives]) == 2
    types = [e.type for e in events]
    assert types[:3] == ["flow.started", "flow.waiting", "flow.admitted"]
    assert events[1].data == {"reason": "max_runs", "limit": 2}
    assert stats == [{"queued": 0, "running": 0, "completed": 8}]


async def test_a_key_limit_holds_per_key_while_keys_run_side_by_side(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project, hosts(project, 2):
        started = [
            await start(project, "tenants", {"tenant": tenant, "n": n})
            for n in range(3)
            for tenant in ("a", "b")
        ]
        await wait_all(project, [s.run_id for s in started])
        lives = await rows(
            project,
            "SELECT r.input ->> 'tenant' AS tenant, s.started_at, r.finished_at "
            "FROM flowhost.runs r JOIN flowhost.steps s ON s.run_id = r.id "
            "WHERE r.flow = 'tenants'",
        )
        await assert_nothing_held(project)
    per_tenant = {
        tenant: [(r["started_at"], r["finished_at"]) for r in lives if r["tenant"] == tenant]
        for tenant in ("a", "b")
    }
    assert max_overlap(per_tenant["a"]) == max_overlap(per_tenant["b"]) == 1
    assert max_overlap([(r["started_at"], r["finished_at"]) for r in lives]) == 2


async def test_waiting_runs_are_served_round_robin_between_keys(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project:
        # All started before any host runs: tenant a's fifty wait ahead of b's five.
        a_runs = [(await start(project, "fair", {"tenant": "a", "n": n})).run_id for n in range(50)]
        b_runs = [(await start(project, "fair", {"tenant": "b", "n": n})).run_id for n in range(5)]
        async with hosts(project, 2):
            await wait_all(project, a_runs + b_runs)
        order = await rows(
            project,
            "SELECT r.id FROM flowhost.runs r JOIN flowhost.steps s ON s.run_id = r.id "
            "WHERE r.flow = 'fair' ORDER BY s.started_at",
        )
        await assert_nothing_held(project)
    position = {row["id"]: index for index, row in enumerate(order)}
    # a (already running), then b, a, b, a, ...: b's fifth run starts tenth, not fifty-fifth.
    assert sorted(position[run] for run in b_runs) == [1, 3, 5, 7, 9]
    assert [position[run] for run in a_runs[:6]] == [0, 2, 4, 6, 8, 10]


async def test_higher_priorities_start_first_and_their_jobs_carry_the_priority(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project:
        low = [(await start(project, "pair", {"n": n})).run_id for n in range(4)]
        high = [
            (await start(project, "pair", {"n": n}, StartOptions(priority=10))).run_id
            for n in range(3)
        ]
        urgent = await start(project, "plain", {"n": 1}, StartOptions(priority=7))
        jobs = await rows(project, "SELECT priority, payload FROM pgqueuer ORDER BY id")
        async with hosts(project, 1):
            await wait_all(project, [*low, *high, urgent.run_id])
        order = await rows(
            project,
            "SELECT r.id FROM flowhost.runs r JOIN flowhost.steps s ON s.run_id = r.id "
            "WHERE r.flow = 'pair' ORDER BY s.started_at",
        )
        logged = await rows(
            project,
            "SELECT DISTINCT priority FROM pgqueuer_log WHERE entrypoint = 'flow:plain'",
        )
    started = [row["id"] for row in order]
    assert set(started[:2]) == set(low[:2])  # the two that had slots at once
    assert set(started[2:5]) == set(high)  # then every higher-priority run
    assert set(started[5:]) == set(low[2:])
    by_run = {decode_job(job["payload"]).run_id: job["priority"] for job in jobs}
    assert by_run[urgent.run_id] == 7 and by_run[low[0]] == 0
    assert logged == [{"priority": 7}]  # the entry job and the next step's


async def test_a_delayed_run_is_queued_and_listed_until_its_time(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project, hosts(project, 1):
        delayed = await start(project, "plain", {"n": 1}, StartOptions(delay=1.0))
        at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=0.6)
        timed = await start(project, "plain", {"n": 2}, StartOptions(start_at=at))
        async with project.database.connection() as conn:
            listed = await reads.list_runs(conn, flow="plain", status="queued")
        assert {row["id"] for row in listed} == {delayed.run_id, timed.run_id}
        assert all(row["start_at"] is not None for row in listed)
        await wait_all(project, [delayed.run_id, timed.run_id])
        first = await rows(
            project,
            "SELECT r.id, r.created_at, s.started_at FROM flowhost.runs r "
            "JOIN flowhost.steps s ON s.run_id = r.id AND s.name = 'plain'",
        )
        async with project.database.connection() as conn:
            events = await events_of_run(conn, delayed.run_id)
    waited = {row["id"]: (row["started_at"] - row["created_at"]).total_seconds() for row in first}
    assert waited[delayed.run_id] >= 1.0
    assert waited[timed.run_id] >= 0.5
    assert [e.type for e in events][:3] == ["flow.started", "flow.waiting", "flow.admitted"]
    assert events[1].data["reason"] == "delay"


async def test_concurrent_starts_with_one_dedupe_key_make_one_run_until_it_expires(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project:
        flow = project.catalog.flows["plain"]
        options = StartOptions(dedupe_key="order-7", dedupe_window=0.5)
        async with Database(database_url, pool_size=10) as database:

            async def one(n: int) -> StartedRun:
                async with database.transaction() as conn:
                    return await start_run(conn, flow, {"n": n}, options)

            results = await asyncio.gather(*(one(n) for n in range(10)))
            assert len({r.run_id for r in results}) == 1
            assert sorted(r.created for r in results) == [False] * 9 + [True]
            await asyncio.sleep(0.6)
            later = await one(99)
        count = await rows(project, "SELECT count(*) AS n FROM flowhost.runs")
    assert later.created and later.run_id != results[0].run_id
    assert count == [{"n": 2}]


async def test_debounced_starts_make_one_run_with_the_last_input_after_the_window(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project, hosts(project, 2):
        flow = project.catalog.flows["plain"]
        options = StartOptions(debounce_key="doc-1", debounce_window=0.4)
        async with Database(database_url, pool_size=8) as database:

            async def one(n: int) -> StartedRun:
                async with database.transaction() as conn:
                    return await start_run(conn, flow, {"n": n}, options)

            burst = await asyncio.gather(*(one(n) for n in range(8)))
            assert len({r.run_id for r in burst}) == 1
            assert sorted(r.created for r in burst) == [False] * 7 + [True]
            run_id = burst[0].run_id
            for n in range(100, 104):  # each within the window of the one before
                assert (await one(n)).run_id == run_id
                await asyncio.sleep(0.1)
            last_start = datetime.datetime.now(datetime.UTC)
            run = await wait_for_run(project, run_id)
            entry = await rows(
                project,
                "SELECT input, started_at FROM flowhost.steps WHERE run_id = %s AND name = 'plain'",
                run_id,
            )
            again = await one(200)
        async with project.database.connection() as conn:
            events = await events_of_run(conn, run_id)
    assert run["status"] == "completed" and run["input"] == {"n": 103}
    assert entry[0]["input"] == {"n": 103}
    assert (entry[0]["started_at"] - last_start).total_seconds() >= 0.3
    assert sum(e.type == "flow.debounced" for e in events) == 11
    assert again.created and again.run_id != run_id  # the run started: a new start, a new run


async def test_canceling_runs_releases_their_slots_to_the_next_waiters(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project, hosts(project, 2):
        first, second, third = [await start(project, "blocking", {"n": n}) for n in range(3)]

        async def status(run_id: uuid.UUID) -> str:
            found = await rows(project, "SELECT status FROM flowhost.runs WHERE id = %s", run_id)
            return str(found[0]["status"])

        async def cancel(run_id: uuid.UUID) -> None:
            async with project.database.transaction() as conn:
                await cancel_run(conn, run_id, by="test")

        assert [await status(r.run_id) for r in (first, second, third)] == [
            "running",
            "queued",
            "queued",
        ]
        await cancel(third.run_id)  # a waiting run: it stops waiting
        await cancel(first.run_id)  # a running one: its slot goes to the next in line
        assert [await status(r.run_id) for r in (first, second, third)] == [
            "canceled",
            "running",
            "canceled",
        ]
        await cancel(second.run_id)
        for run in (first, second, third):
            await wait_for_run(project, run.run_id)
        stats = await rows(
            project,
            "SELECT queued, running, canceled FROM flowhost.flow_stats WHERE flow = 'blocking'",
        )
        await assert_nothing_held(project)
    assert stats == [{"queued": 0, "running": 0, "canceled": 3}]


async def test_jobs_granted_in_sql_are_the_jobs_python_enqueues(
    tmp_path: Path, database_url: str
) -> None:
    async with project_of(tmp_path, database_url) as project:
        # "pair" starts its first runs through the SQL gate; "plain" through PgQueuer's API.
        by_sql = await start(project, "pair", {"n": 1}, StartOptions(priority=3))
        by_python = await start(project, "plain", {"n": 1}, StartOptions(priority=3))
        jobs = await rows(
            project, "SELECT entrypoint, dedupe_key, priority, payload, status FROM pgqueuer"
        )
        logged = await rows(project, "SELECT entrypoint, status FROM pgqueuer_log ORDER BY id")
    found = {decode_job(job["payload"]).run_id: job for job in jobs}
    for run_id, flow, step in (
        (by_sql.run_id, "pair", "pair"),
        (by_python.run_id, "plain", "plain"),
    ):
        job = found[run_id]
        assert decode_job(job["payload"]) == StepJob(run_id, flow, step, 1)
        assert (job["entrypoint"], job["dedupe_key"]) == (f"flow:{flow}", f"{run_id}:{step}:1")
        assert (job["priority"], job["status"]) == (3, "queued")
    assert logged == [
        {"entrypoint": "flow:pair", "status": "queued"},
        {"entrypoint": "flow:plain", "status": "queued"},
    ]


WATCH = """
from flowhost_worker import step

async def watch(data, ctx):
    delayed = await ctx.flow.start("later", {"x": 1}, priority=3, delay=30)
    first = await ctx.flow.start("later", {"x": 2}, dedupe_key="d", dedupe_window=60)
    again = await ctx.flow.start("later", {"x": 3}, dedupe_key="d", dedupe_window=60)
    try:
        await ctx.flow.start("later", {}, dedupe_key="no window")
        refused = None
    except ValueError as exc:
        refused = str(exc)
    return {
        "delayed": delayed,
        "first": first,
        "again": again,
        "refused": refused,
        "running": await ctx.flow.running("later", exclude=[first]),
        "mine": await ctx.flow.running(),
        "stats": await ctx.flow.stats("later"),
        "none": await ctx.flow.stats("nothing"),
    }

@step(flow="in_child", entry=True)
async def from_child(data, ctx):
    return await watch(data, ctx)

@step(flow="in_host", entry=True, isolation="inprocess")
async def from_host(data, ctx):
    return await watch(data, ctx)

@step(flow="later", entry=True, isolation="inprocess")
async def later(data, ctx):
    return data
"""


async def test_ctx_flow_starts_with_options_and_answers_running_runs_and_statistics(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, {"watch.py": WATCH})
    async with running_host(tmp_path, database_url) as project:
        for flow in ("in_child", "in_host"):
            parent = await start(project, flow, {})
            run = await wait_for_run(project, parent.run_id)
            assert run["status"] == "completed", run["error"]
            found = run["result"]
            delayed = await rows(
                project,
                "SELECT status, priority, start_at, parent_run_id FROM flowhost.runs WHERE id = %s",
                uuid.UUID(found["delayed"]),
            )
            assert delayed[0]["status"] == "queued" and delayed[0]["priority"] == 3
            assert delayed[0]["start_at"] is not None
            assert delayed[0]["parent_run_id"] == parent.run_id
            assert found["first"] == found["again"]
            assert "dedupe_key and dedupe_window go together" in found["refused"]
            assert found["mine"] == []
            [listed] = [r for r in found["running"] if r["run_id"] == found["delayed"]]
            assert listed == {
                "run_id": found["delayed"],
                "flow": "later",
                "status": "queued",
                "started_at": listed["started_at"],
                "step_count": 1,
                "completed_steps": 0,
                "parent_run_id": str(parent.run_id),
            }
            assert datetime.datetime.fromisoformat(listed["started_at"]).tzinfo is not None
            assert found["first"] not in {r["run_id"] for r in found["running"]}
            assert found["stats"]["flow"] == "later" and found["stats"]["total"] >= 2
            assert found["none"] is None


async def test_a_retried_run_takes_its_slots_again_and_gives_them_back(
    tmp_path: Path, database_url: str
) -> None:
    from flowhost.engine.control import retry_run

    async with project_of(tmp_path, database_url) as project, hosts(project, 1):
        failing = await start(project, "fragile", {"fail": True})
        waiting = await start(project, "fragile", {"fail": False})
        assert (await wait_for_run(project, failing.run_id))["status"] == "failed"
        # Its end released its slots: the run waiting behind it ran.
        assert (await wait_for_run(project, waiting.run_id))["status"] == "completed"
        async with project.database.transaction() as conn:
            retried = await retry_run(conn, failing.run_id, project.catalog.flows, by="test")
        assert retried.steps == {"fragile": 2}
        assert (await wait_for_run(project, failing.run_id))["status"] == "completed"
        await assert_nothing_held(project)
