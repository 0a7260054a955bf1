"""Realtime streams over a real uvicorn and a real Postgres: a run's events live and in order,
resume with Last-Event-ID, the run status changes of every run with filters, many streams on
one LISTEN connection, slow consumers, auth."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.db.database import Database
from flowhost.engine.orchestrator import start_runs
from flowhost.project import Project
from flowhost.realtime.fanout import APPLICATION_NAME, Fanout
from flowhost.realtime.follow import follow_run
from flowhost.store.events import NewEvent, append_events, events_of_run
from tests.support.api import TOKEN, assert_problem, serving_api
from tests.support.engine import running_host, start, wait_for_run, write_functions
from tests.support.sse import Frame, frames, serving_http

SLOW = """
import asyncio
from flowhost_worker import step

@step(flow="slow", name="first", entry=True, emits=["next"], isolation="inprocess")
async def first(data, ctx):
    ctx.logger.info("first begins", n=1)
    await asyncio.sleep(data.get("pause", 0.3))
    await ctx.emit("next", {})
    return 1

@step(flow="slow", name="second", subscribes=["next"], isolation="inprocess")
async def second(events, ctx):
    ctx.logger.info("second begins")
    await asyncio.sleep(0.3)
    return 2

@step(flow="quick", name="only", entry=True, isolation="inprocess")
async def only(data, ctx):
    if data.get("fail"):
        raise ValueError("asked to fail")
    return "done"
"""
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return write_functions(tmp_path, {"slow.py": SLOW})


def client(url: str, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30, **kwargs)


async def read_run_stream(
    http: httpx.AsyncClient, run_id: uuid.UUID, *, headers: dict[str, str] | None = None
) -> tuple[list[Frame], int]:
    """Every frame of the run's stream until the server ends it; and the status code."""
    seen: list[Frame] = []
    async with http.stream("GET", f"/api/runs/{run_id}/stream", headers=headers) as response:
        if response.status_code != 200:
            return seen, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        async with asyncio.timeout(30):
            async for item in frames(response):
                seen.append(item)
    return seen, response.status_code


async def event_ids(project: Project, run_id: uuid.UUID) -> list[int]:
    async with project.database.connection() as conn:
        return [e.id for e in await events_of_run(conn, run_id, limit=10_000)]


async def test_a_run_stream_shows_its_events_live_in_order_and_ends(
    project_dir: Path, database_url: str
) -> None:
    async with (
        running_host(project_dir, database_url, api_token=TOKEN) as project,
        serving_http(project) as (url, _app),
        client(url) as http,
    ):
        run_id = await start(project, "slow", {"pause": 0.5})
        seen, status = await read_run_stream(http, run_id)
        stored = await event_ids(project, run_id)
    assert status == 200
    events = [f for f in seen if f.event is not None and f.event != "end"]
    assert [int(f.id or 0) for f in events] == stored
    assert [f.json["id"] for f in events] == stored
    assert all(f.json["run_id"] == str(run_id) and f.json["flow"] == "slow" for f in events)
    types = [f.event for f in events]
    assert types[0] == "flow.started" and types[-1] == "flow.completed"
    assert "log" in types and "step.completed" in types
    # Live: the stream was open (": live") before the run's later events were committed.
    live_at = next(i for i, f in enumerate(seen) if f.comment == "live")
    assert any(f.event == "flow.completed" for f in seen[live_at:])
    end = seen[-1]
    assert end.event == "end" and end.id is None
    assert end.json == {"run_id": str(run_id), "status": "completed"}


async def test_resume_with_last_event_id_gets_exactly_the_missed_events(
    project_dir: Path, database_url: str
) -> None:
    async with (
        running_host(project_dir, database_url, api_token=TOKEN) as project,
        serving_http(project) as (url, _app),
        client(url) as http,
    ):
        run_id = await start(project, "slow", {"pause": 0.6})
        first: list[Frame] = []
        # Read two events live, then drop the connection while the run goes on.
        async with http.stream("GET", f"/api/runs/{run_id}/stream") as response:
            async for item in frames(response):
                if item.event is not None:
                    first.append(item)
                if len(first) == 2:
                    break
        await wait_for_run(project, run_id)
        rest, status = await read_run_stream(
            http, run_id, headers={"Last-Event-ID": first[-1].id or ""}
        )
        by_query, _ = await read_run_stream(http, run_id, headers=None)
        after_end, end_status = await read_run_stream(
            http, run_id, headers={"Last-Event-ID": str((await event_ids(project, run_id))[-1])}
        )
        bad = await http.get(f"/api/runs/{run_id}/stream", headers={"Last-Event-ID": "12x"})
        stored = await event_ids(project, run_id)
    assert status == 200
    resumed = [int(f.id or 0) for f in rest if f.id is not None]
    assert [int(f.id or 0) for f in first] + resumed == stored
    assert len(set(resumed)) == len(resumed)
    assert [int(f.id or 0) for f in by_query if f.id is not None] == stored
    # Over, and nothing after the last event: 204 tells an EventSource to stop reconnecting.
    assert end_status == 204 and after_end == []
    assert_problem(bad, 422)


async def test_the_changes_stream_filters_by_flow_and_status_and_resumes(
    project_dir: Path, database_url: str
) -> None:
    async with (
        running_host(project_dir, database_url, api_token=TOKEN) as project,
        serving_http(project) as (url, _app),
        client(url) as http,
    ):
        seen: list[Frame] = []
        everything: list[Frame] = []

        async def read(path: str, into: list[Frame], until: int, opened: asyncio.Event) -> None:
            async with http.stream("GET", path) as response:
                assert response.status_code == 200
                async for item in frames(response):
                    if item.comment == "live":
                        opened.set()
                    if item.event is not None:
                        into.append(item)
                    if len(into) >= until:
                        return

        failed_quick = asyncio.Event()
        all_open = asyncio.Event()
        filtered = asyncio.create_task(
            read("/api/stream?flow=quick&status=failed", seen, 1, failed_quick)
        )
        unfiltered = asyncio.create_task(read("/api/stream", everything, 6, all_open))
        await asyncio.wait_for(asyncio.gather(failed_quick.wait(), all_open.wait()), 10)
        ok = await start(project, "quick", {})
        await wait_for_run(project, ok)
        bad = await start(project, "quick", {"fail": True})
        slow = await start(project, "slow", {"pause": 0.01})
        for run in (bad, slow):
            await wait_for_run(project, run)
        await asyncio.wait_for(asyncio.gather(filtered, unfiltered), 20)
        # Resume the unfiltered stream after its first change: the rest again, from the table.
        resumed_from: list[Frame] = []
        async with http.stream(
            "GET", "/api/stream", headers={"Last-Event-ID": everything[0].id or ""}
        ) as response:
            async for item in frames(response):
                if item.comment == "live":
                    break
                if item.event is not None:
                    resumed_from.append(item)
    assert [(f.event, f.json["run_id"]) for f in seen] == [("flow.failed", str(bad))]
    assert seen[0].json["status"] == "failed" and seen[0].json["flow"] == "quick"
    assert all(f.event is not None and f.event.startswith("flow.") for f in everything)
    assert {f.json["run_id"] for f in everything} == {str(ok), str(bad), str(slow)}
    assert [f.id for f in resumed_from] == [f.id for f in everything[1:]]


async def test_many_streams_share_one_listen_connection(
    project_dir: Path, database_url: str
) -> None:
    streams = 210
    async with (
        running_host(project_dir, database_url, api_token=TOKEN) as project,
        serving_http(project) as (url, app),
        client(url, limits=httpx.Limits(max_connections=None)) as http,
    ):
        run_id = await start(project, "slow", {"pause": 1.0})
        opened = 0
        done: list[list[Frame]] = []

        async def follow(path: str) -> None:
            nonlocal opened
            got: list[Frame] = []
            async with http.stream("GET", path) as response:
                assert response.status_code == 200
                async for item in frames(response):
                    if item.comment == "live":
                        opened += 1
                    if item.event is not None:
                        got.append(item)
                    if item.event in ("end", "flow.completed"):
                        break
            done.append(got)

        tasks = [
            asyncio.create_task(follow(f"/api/runs/{run_id}/stream" if i % 2 else "/api/stream"))
            for i in range(streams)
        ]
        async with asyncio.timeout(30):
            while opened < streams:
                await asyncio.sleep(0.05)
        async with project.database.connection() as conn:
            cursor = await conn.execute(
                # The listening connection is the one with this name (its last statement is
                # its registration, so the LISTEN itself is not what pg_stat_activity shows).
                "SELECT count(*) AS listeners FROM pg_stat_activity WHERE application_name = %s",
                [APPLICATION_NAME],
            )
            row = await cursor.fetchone()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        fanout: Fanout = app.state.api.state.realtime
        reads = fanout.reads
        stored = await event_ids(project, run_id)
        stop_started = time.monotonic()
    stop_took = time.monotonic() - stop_started
    assert row is not None and row["listeners"] == 1
    assert len(done) == streams
    per_run = [got for got in done if got and got[0].event == "flow.started"]
    for got in per_run:
        assert [int(f.id or 0) for f in got if f.event != "end"] == stored
    # One read per wake-up for all the streams, not one per stream.
    assert reads < 30, reads
    assert stop_took < 15


LIMIT, APPENDS, PER_APPEND = 100, 30, 5


async def test_a_slow_consumer_neither_blocks_others_nor_misses_anything(
    database: Database, tmp_path: Path
) -> None:
    from flowhost.engine.catalog import FunctionCatalog
    from flowhost.settings import load_settings
    from flowhost.workers.commands import RuntimeCommands

    project_dir = write_functions(tmp_path, {"slow.py": SLOW})
    settings = load_settings(project_dir, environ={})
    catalog = FunctionCatalog(settings.functions_path, RuntimeCommands.from_settings(settings))
    await catalog.reload()
    async with database.transaction() as conn:
        [run_id] = await start_runs(conn, catalog.flows["slow"], [{}])
    fanout = Fanout(database, limit=LIMIT)
    try:
        slow = follow_run(fanout, database, run_id, heartbeat=0.2)
        fast = follow_run(fanout, database, run_id, heartbeat=0.2)
        backlog_slow = await anext(slow)  # flow.started, then it stops reading
        backlog_fast = await anext(fast)
        assert await anext(slow) == [] and await anext(fast) == []  # both live
        got_fast: list[int] = []

        async def read_fast() -> None:
            while len(got_fast) < APPENDS * PER_APPEND:
                got_fast.extend(e.id for e in await anext(fast))

        reading = asyncio.create_task(read_fast())
        for n in range(APPENDS):
            async with database.transaction() as conn:
                await append_events(
                    conn,
                    [
                        NewEvent(run_id, "log", {"level": "info", "message": f"m{n}.{i}"})
                        for i in range(PER_APPEND)
                    ],
                )
            # Paced: a reader keeping up never has LIMIT events waiting in one read.
            await asyncio.sleep(0.01)
        await asyncio.wait_for(reading, 10)
        lags_while_appending = fanout.lags
        got_slow: list[int] = []
        async with asyncio.timeout(10):
            while len(got_slow) < APPENDS * PER_APPEND:
                got_slow += [e.id for e in await anext(slow)]
        async with database.connection() as conn:
            stored = [e.id for e in await events_of_run(conn, run_id, limit=1000)]
        await slow.aclose()
        await fast.aclose()
    finally:
        await fanout.close()
    assert [e.id for e in backlog_slow] == [e.id for e in backlog_fast] == stored[:1]
    assert got_fast == stored[1:]
    # Only the one that stopped reading fell behind.
    assert lags_while_appending == 1
    # The slow one was dropped by the fan-out (bounded) and read what it missed from the table.
    assert got_slow == stored[1:]
    assert fanout.subscribers == 0


async def test_streams_need_the_admin_token(project_dir: Path, database_url: str) -> None:
    async with serving_api(project_dir, database_url, token=None) as (_project, http):
        anonymous = await http.get(f"/api/runs/{uuid.uuid4()}/stream")
        changes = await http.get("/api/stream")
        wrong = await http.get(
            "/api/stream", headers={"Authorization": "Bearer nope-nope-nope-nope"}
        )
    async with serving_api(project_dir, database_url) as (_project, http):
        missing = await http.get(f"/api/runs/{uuid.uuid4()}/stream")
        bad_status = await http.get("/api/stream?status=sleeping")
    for answer in (anonymous, changes, wrong):
        assert_problem(answer, 401)
    assert_problem(missing, 404)
    assert_problem(bad_status, 422)


async def test_events_are_announced_only_while_a_process_streams(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    import psycopg

    from flowhost.engine.catalog import FunctionCatalog
    from flowhost.settings import load_settings
    from flowhost.workers.commands import RuntimeCommands

    project_dir = write_functions(tmp_path, {"slow.py": SLOW})
    settings = load_settings(project_dir, environ={})
    catalog = FunctionCatalog(settings.functions_path, RuntimeCommands.from_settings(settings))
    await catalog.reload()
    async with database.transaction() as conn:
        [run_id] = await start_runs(conn, catalog.flows["slow"], [{}])

    async def first_notification_after_append() -> str:
        """Append an event, then NOTIFY a marker: notifications arrive in commit order, so
        the first one says whether the append was announced."""
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as ear:
            await ear.execute("LISTEN flowhost_events")
            async with database.transaction() as conn:
                await append_events(conn, [NewEvent(run_id, "log", {"message": "x"})])
            async with database.connection() as conn:
                await conn.execute("SELECT pg_notify('flowhost_events', 'marker')")
            async for note in ear.notifies(timeout=10):
                return note.payload
        raise AssertionError("no notification at all")

    quiet = await first_notification_after_append()
    fanout = Fanout(database)
    subscription = await fanout.subscribe(run_id)
    announced = await first_notification_after_append()
    fanout.unsubscribe(subscription)
    await fanout.close()
    async with database.connection() as conn:
        cursor = await conn.execute("SELECT count(*) AS n FROM flowhost.stream_listeners")
        row = await cursor.fetchone()
    quiet_again = await first_notification_after_append()
    assert quiet == "marker"
    assert announced != "marker" and ":" in announced
    assert row is not None and row["n"] == 0
    assert quiet_again == "marker"
