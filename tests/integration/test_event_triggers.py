"""Event triggers on a real engine: steps' emits and published events start the subscribed
flows in the transaction that records them; chains stop at their depth limit; an emit no
trigger matches costs nothing."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from flowhost.db.database import Database
from flowhost.engine.await_resolution import publish, publish_event
from flowhost.engine.orchestrator import Emitted
from flowhost.store import reads
from flowhost.store import triggers as store
from flowhost.store.events import events_of_run
from flowhost.triggers import service
from flowhost.triggers.declarations import TriggerSpec
from flowhost.triggers.event_triggers import EventTriggers
from tests.support.engine import running_host, start, wait_for_run, write_functions

FUNCTIONS = {
    "orders.py": """
from flowhost_worker import step

@step(flow="orders", entry=True, emits=["order.paid", "order.noted"], isolation="inprocess",
      triggers={"define": {"name": "orders.paid", "type": "event",
                           "config": {"events": ["order.paid", "invoice.#"]}}})
async def pay(data, ctx):
    await ctx.emit("order.noted", {"id": data["id"]})
    await ctx.emit("order.paid", {"id": data["id"], "total": data.get("total", 1)})
    return data
""",
    "ship.py": """
from flowhost_worker import step

@step(flow="ship", entry=True, isolation="inprocess", triggers={"subscribe": "orders.paid"})
async def ship(data, ctx):
    return {"shipped": data["id"]}
""",
    "loop.py": """
from flowhost_worker import step

@step(flow="loop", entry=True, emits=["tick"], isolation="inprocess",
      triggers={"define": {"name": "tick", "type": "event"}, "subscribe": "tick"})
async def loop(data, ctx):
    await ctx.emit("tick", {"n": data.get("n", 0) + 1})
    return data
""",
}


def project_dir(tmp_path: Path) -> Path:
    return write_functions(tmp_path, FUNCTIONS)


async def runs_of(database: Database, flow: str) -> list[dict[str, Any]]:
    async with database.connection() as conn:
        return await reads.list_runs(conn, flow=flow, limit=1000)


async def wait_for_runs(
    database: Database, flow: str, count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while True:
            found = await runs_of(database, flow)
            if len(found) >= count and all(r["status"] in reads.TERMINAL_STATUSES for r in found):
                return found
            await asyncio.sleep(0.02)


async def started_event(database: Database, run_id: uuid.UUID) -> dict[str, Any]:
    async with database.connection() as conn:
        first = (await events_of_run(conn, run_id, limit=1))[0]
    assert first.type == "flow.started"
    return first.data


async def test_an_emit_starts_the_subscribed_flow(tmp_path: Path, database_url: str) -> None:
    async with running_host(project_dir(tmp_path), database_url) as project:
        order = await start(project, "orders", {"id": "A-1", "total": 5})
        assert (await wait_for_run(project, order))["status"] == "completed"
        [shipped] = await wait_for_runs(project.database, "ship", 1)
        started = await started_event(project.database, shipped["id"])
        async with project.database.connection() as conn:
            [fired] = await store.trigger_events(conn, "orders.paid", types=["trigger.fired"])
            view = await service.get_trigger(conn, "orders.paid")
    assert shipped["status"] == "completed"
    assert started["input"] == {"id": "A-1", "total": 5}
    assert started["trigger"]["name"] == "orders.paid"
    assert started["trigger"]["source"] == "emit" and started["trigger"]["depth"] == 1
    assert fired.data["details"] == {"event": "order.paid", "run_id": str(order), "step": "pay"}
    assert fired.data["runs"] == [{"flow": "ship", "run_id": str(shipped["id"])}]
    assert view.total_fires == 1  # order.noted matched nothing


async def test_a_chain_of_event_triggers_stops_at_its_depth_limit(
    tmp_path: Path, database_url: str
) -> None:
    async with running_host(project_dir(tmp_path), database_url, trigger_max_depth=3) as project:
        first = await start(project, "loop", {"n": 0})
        # The last run's end records the stop in the transaction that would have started a
        # fifth run: once the four are over, there is nothing more to wait for.
        runs = await wait_for_runs(project.database, "loop", 4)
        depths = {}
        for run in runs:
            depths[
                (await started_event(project.database, run["id"]))
                .get("trigger", {})
                .get("depth", 0)
            ] = run["id"]
        last = depths[3]
        async with project.database.connection() as conn:
            stopped = [e for e in await events_of_run(conn, last) if e.type.startswith("trigger.")]
            chain = await store.trigger_events(conn, "tick", types=["trigger.chain_stopped"])
    assert len(runs) == 4 and sorted(depths) == [0, 1, 2, 3]
    assert depths[0] == first
    assert [e.type for e in stopped] == ["trigger.chain_stopped"]
    assert stopped[0].step == "loop"
    assert stopped[0].data["depth"] == 4 and stopped[0].data["max_depth"] == 3
    assert "the limit is 3" in stopped[0].data["message"]
    assert len(chain) == 1 and chain[0].data["run_id"] == str(last)


async def test_a_published_event_fires_triggers_in_its_transaction(
    tmp_path: Path, database_url: str
) -> None:
    async with running_host(project_dir(tmp_path), database_url) as project:
        database = project.database
        async with asyncio.timeout(30):  # the host registered its triggers
            while not project.event_triggers.matching("invoice.sent"):
                await asyncio.sleep(0.01)

        class Abort(Exception):
            pass

        with pytest.raises(Abort):
            async with database.transaction() as conn:
                published = await publish(
                    conn, "invoice.sent.late", {"id": "I-1"}, triggers=project.event_triggers
                )
                assert len(published.fires.fired) == 1
                raise Abort
        assert await runs_of(database, "ship") == []
        async with database.transaction() as conn:
            assert await publish_event(conn, "invoice.sent", {"id": "I-2"}) == 0
        [shipped] = await wait_for_runs(database, "ship", 1)
        started = await started_event(database, shipped["id"])
        async with database.connection() as conn:
            fired = await store.trigger_events(conn, "orders.paid", types=["trigger.fired"])
    assert shipped["status"] == "completed"
    assert started["trigger"]["source"] == "event" and started["trigger"]["depth"] == 1
    assert [e.data["details"] for e in fired] == [{"event": "invoice.sent"}]


async def test_a_trigger_registered_while_a_host_runs_is_used_at_once(
    tmp_path: Path, database_url: str
) -> None:
    # No periodic check to fall back on: the notification has to do it.
    async with running_host(
        project_dir(tmp_path), database_url, trigger_check_interval=3600
    ) as project:
        async with asyncio.timeout(30):
            while project.event_triggers.generation is None:
                await asyncio.sleep(0.01)
        assert project.event_triggers.matching("order.noted") == []
        async with project.database.transaction() as conn:
            await service.create_trigger(
                conn,
                TriggerSpec("noted", "event", config={"events": ["order.noted"]}),
                subscribe={"ship": "auto"},
            )
        async with asyncio.timeout(2):
            while project.event_triggers.matching("order.noted") != ["noted"]:
                await asyncio.sleep(0.005)
        await start(project, "orders", {"id": "B-2"})
        shipped = await wait_for_runs(project.database, "ship", 2)
    assert sorted(r["status"] for r in shipped) == ["completed", "completed"]


async def test_a_fire_that_fails_does_not_fail_the_step_that_emitted(
    tmp_path: Path, database_url: str
) -> None:
    async with running_host(project_dir(tmp_path), database_url) as project:
        async with project.database.transaction() as conn:
            await service.create_trigger(
                conn,
                TriggerSpec(
                    "strict",
                    "event",
                    config={
                        "events": ["order.paid"],
                        "schema": {"type": "object", "required": ["currency"]},
                    },
                ),
                subscribe={"ship": "auto"},
            )
        async with asyncio.timeout(10):
            while project.event_triggers.matching("order.paid") != ["orders.paid", "strict"]:
                await asyncio.sleep(0.01)
        order = await start(project, "orders", {"id": "C-3"})
        assert (await wait_for_run(project, order))["status"] == "completed"
        await wait_for_runs(project.database, "ship", 1)
        async with project.database.connection() as conn:
            failed = [e for e in await events_of_run(conn, order) if e.type.startswith("trigger.")]
            strict = await store.trigger_events(conn, "strict", types=["trigger.fire_failed"])
    assert [e.type for e in failed] == ["trigger.fire_failed"]
    assert failed[0].data["trigger"] == "strict"
    assert failed[0].data["error"]["type"] == "TriggerInputError"
    assert failed[0].data["error"]["errors"] == [
        {"pointer": "", "message": "'currency' is a required property"}
    ]
    assert len(strict) == 1


class NoDatabase:
    """Stands where a connection goes: any use of it fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"an emit no trigger matches used the connection ({name})")


async def test_an_emit_no_trigger_matches_costs_no_round_trip(database: Database) -> None:
    async with database.transaction() as conn:
        await service.create_trigger(
            conn, TriggerSpec("paid", "event", config={"events": ["order.*", "#.late"]})
        )
    triggers = EventTriggers()
    async with database.connection() as conn:
        await triggers.load(conn)
    run = uuid.uuid4()
    emits = [Emitted(run, "pay", name, {}) for name in ("invoice.sent", "order", "a..b", "x.y.z")]
    await triggers.emitted(NoDatabase(), emits)  # type: ignore[arg-type]
    assert triggers.matching("order.paid") == ["paid"]
    assert triggers.matching("order.paid.late") == ["paid"]
    with pytest.raises(AssertionError, match="used the connection"):
        await triggers.emitted(NoDatabase(), [Emitted(run, "pay", "order.paid", {})])  # type: ignore[arg-type]


async def test_a_changed_trigger_is_noticed_by_the_generation_check(database: Database) -> None:
    triggers = EventTriggers()
    stop = asyncio.Event()
    watching = asyncio.create_task(triggers.watch(database, 0.05, stop))
    try:
        async with asyncio.timeout(5):
            while triggers.generation is None:
                await asyncio.sleep(0.01)
        # Nobody forwards notifications to this index: only the periodic check can see this.
        async with database.transaction() as conn:
            await service.create_trigger(
                conn, TriggerSpec("late", "event", config={"events": "#.late"})
            )
        async with asyncio.timeout(5):
            while triggers.matching("x.late") != ["late"]:
                await asyncio.sleep(0.01)
        async with database.transaction() as conn:
            await service.retire_trigger(conn, "late")
        async with asyncio.timeout(5):
            while triggers.matching("x.late"):
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await watching
