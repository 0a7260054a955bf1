"""Awaits end to end in one process: real Postgres, a real host (in-process steps), its sweeper
and HTTP. Each await type before and after a step, each timeout action, event matches against
JSON Pointers, hooks, and the webhook's answers."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.db.queries import QUERIES
from flowhost.engine import control
from flowhost.engine.await_resolution import publish_event
from flowhost.engine.definitions import AwaitDefinition
from flowhost.engine.orchestrator import start_runs
from flowhost.project import Project
from flowhost.store import reads
from tests.support.awaits import await_rows, awaiting_host, event_types, poll
from tests.support.engine import start, wait_for_run, write_functions

FLOW = """
from flowhost_worker import step

@step(flow="wait", name="start", entry=True, emits=["go"], isolation="inprocess")
async def start(data, ctx):
    await ctx.emit("go", data)
    return {"started": data}

@step(flow="wait", name="middle", subscribes=["go"], emits=["done"], isolation="inprocess")
async def middle(data, ctx):
    await ctx.state.set("middle_ran", True)
    await ctx.emit("done", {"order": data["go"].get("order"), "by": "middle"})
    awaited = None if ctx.awaited is None else [ctx.awaited.type, ctx.awaited.data]
    return {"middle": data["go"], "awaited": awaited}

@step(flow="wait", name="last", subscribes=["done"], isolation="inprocess", attempts=2,
      backoff=0.01)
async def last(data, ctx):
    return {"last": data["done"]}

async def on_register(data, ctx):
    await ctx.state.set("register", data)

async def on_resolve(data, ctx):
    await ctx.state.set("resolve", data)

async def on_timeout(data, ctx):
    await ctx.state.set("timeout", data)

async def broken_hook(data, ctx):
    raise RuntimeError("the mail server is down")
"""

# Another flow whose step emits the event a run of "wait" waits for.
PAYER = """
from flowhost_worker import step

@step(flow="payer", name="pay", entry=True, emits=["payment.done"], isolation="inprocess")
async def pay(data, ctx):
    await ctx.emit("payment.done", data)
    return "paid"
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return write_functions(tmp_path, {"wait.py": FLOW, "payer.py": PAYER})


def time_await(seconds: float, **options: Any) -> AwaitDefinition:
    return AwaitDefinition(type="time", delay=seconds, **options)


async def run_row(project: Project, run_id: uuid.UUID) -> dict[str, Any]:
    async with project.database.connection() as conn:
        return await reads.get_run(conn, run_id)


async def step_row(project: Project, run_id: uuid.UUID, step: str) -> dict[str, Any]:
    async with project.database.connection() as conn:
        cursor = await conn.execute(
            "SELECT * FROM flowhost.steps WHERE run_id = %s AND name = %s", (run_id, step)
        )
        row = await cursor.fetchone()
    assert row is not None
    return row


async def flow_counts(project: Project) -> dict[str, Any]:
    async with project.database.connection() as conn:
        cursor = await conn.execute(
            "SELECT running, awaiting, completed FROM flowhost.flow_stats WHERE flow = 'wait'"
        )
        row = await cursor.fetchone()
    assert row is not None
    return row


async def wait_for_await(project: Project, run_id: uuid.UUID, step: str) -> None:
    await poll(
        project,
        "SELECT count(*) FROM flowhost.awaits WHERE run_id = %s AND step = %s",
        (run_id, step),
    )


# -- time ---------------------------------------------------------------------------------


async def test_time_await_before_a_step(project_dir: Path, database_url: str) -> None:
    awaits = {("wait", "middle"): {"before": time_await(0.4)}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "A-1"})
        await wait_for_await(project, run_id, "middle")
        waiting = await run_row(project, run_id)
        middle = await step_row(project, run_id, "middle")
        counts_waiting = await flow_counts(project)
        run = await wait_for_run(project, run_id)
        counts_after = await flow_counts(project)
        [row] = await await_rows(project, run_id)
        types = await event_types(project, run_id)
        resolved = await step_row(project, run_id, "middle")

    assert waiting["status"] == "awaiting" and middle["status"] == "awaiting"
    # The flow statistics count the run under its status.
    assert counts_waiting == {"running": 0, "awaiting": 1, "completed": 0}
    assert counts_after == {"running": 0, "awaiting": 0, "completed": 1}
    assert run["status"] == "completed", run["error"]
    assert row["status"] == "resolved" and row["position"] == "before"
    # The sweeper fires it on time: not before, and within a fraction of a second after.
    late = (row["resolved_at"] - row["resolve_at"]).total_seconds()
    assert 0 <= late < 0.1, late
    assert resolved["awaited"] == {"type": "time", "data": None}
    assert resolved["result"]["awaited"] == ["time", None]  # ctx.awaited
    assert types.index(("await.registered", "middle")) < types.index(("await.resolved", "middle"))
    assert types.index(("await.resolved", "middle")) < types.index(("step.started", "middle"))


async def test_time_await_after_a_step_holds_its_emits(
    project_dir: Path, database_url: str
) -> None:
    awaits = {("wait", "middle"): {"after": time_await(0.5)}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "A-2"})
        await wait_for_await(project, run_id, "middle")
        held = await step_row(project, run_id, "middle")
        waiting = await run_row(project, run_id)
        async with project.database.connection() as conn:
            emitted = await (
                await conn.execute("SELECT emitted FROM flowhost.runs WHERE id = %s", (run_id,))
            ).fetchone()
        run = await wait_for_run(project, run_id)
        types = await event_types(project, run_id)
        [row] = await await_rows(project, run_id)

    # The step ran and its result is recorded, but its emit does not count yet.
    assert held["status"] == "awaiting"
    assert held["result"] == {"middle": {"order": "A-2"}, "awaited": None}
    assert waiting["status"] == "awaiting"
    assert emitted is not None and "done" not in emitted["emitted"]
    assert row["held"]["emits"] == [["done", {"order": "A-2", "by": "middle"}]]
    assert run["status"] == "completed", run["error"]
    assert run["result"] == {"last": {"order": "A-2", "by": "middle"}}
    # The emit is recorded when it counts, after the await resolved.
    middle_events = [t for t, step in types if step == "middle"]
    assert middle_events[-3:] == ["await.registered", "await.resolved", "emit"]


async def test_schedule_await_resolves_at_the_next_fire(
    project_dir: Path, database_url: str
) -> None:
    every_second = AwaitDefinition(type="schedule", cron="* * * * * *", timezone="Europe/Paris")
    awaits = {("wait", "middle"): {"before": every_second}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "S"})
        run = await wait_for_run(project, run_id)
        [row] = await await_rows(project, run_id)
    assert run["status"] == "completed", run["error"]
    assert row["resolve_at"].microsecond == 0  # a cron fire time
    assert row["resolution"] == {"scheduled_at": row["resolve_at"].isoformat()}


async def test_an_await_overdue_while_no_host_ran_resolves_when_one_starts(
    project_dir: Path, database_url: str
) -> None:
    awaits = {("wait", "middle"): {"before": time_await(3600)}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "late"})
        await wait_for_await(project, run_id, "middle")
        # The hour passes while no host runs.
        async with project.database.connection() as conn:
            await conn.execute(
                "UPDATE flowhost.awaits SET resolve_at = clock_timestamp() - interval '1 minute'"
                " WHERE run_id = %s",
                (run_id,),
            )
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run = await wait_for_run(project, run_id)
    assert run["status"] == "completed", run["error"]


async def test_an_entry_step_can_await_before_it_runs(project_dir: Path, database_url: str) -> None:
    awaits = {("wait", "start"): {"before": time_await(0.2)}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "E"})
        run = await wait_for_run(project, run_id)
        [row] = await await_rows(project, run_id)
    assert run["status"] == "completed", run["error"]
    assert (row["step"], row["position"], row["status"]) == ("start", "before", "resolved")


# -- events ---------------------------------------------------------------------------------


async def test_event_await_matches_payload_fields_to_pointers_into_the_input(
    project_dir: Path, database_url: str
) -> None:
    payment = AwaitDefinition(
        type="event", event="payment.done", match={"order": "/go/order", "currency": "/go/cur"}
    )
    awaits = {("wait", "middle"): {"before": payment}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "A-7", "cur": "EUR"})
        other = await start(project, "wait", {"order": "A-8", "cur": "EUR"})
        await wait_for_await(project, run_id, "middle")
        await wait_for_await(project, other, "middle")
        async with project.database.transaction() as conn:
            wrong_order = await publish_event(
                conn, "payment.done", {"order": "A-9", "currency": "EUR"}
            )
            wrong_name = await publish_event(
                conn, "payment.failed", {"order": "A-7", "currency": "EUR"}
            )
            missing_field = await publish_event(conn, "payment.done", {"order": "A-7"})
        async with project.database.transaction() as conn:
            resolved = await publish_event(
                conn, "payment.done", {"order": "A-7", "currency": "EUR", "amount": 12}
            )
        run = await wait_for_run(project, run_id)
        [row] = await await_rows(project, run_id)
        middle = await step_row(project, run_id, "middle")
        async with project.database.transaction() as conn:
            again = await publish_event(
                conn, "payment.done", {"order": "A-7", "currency": "EUR", "amount": 12}
            )
        other_run = await run_row(project, other)
    assert (wrong_order, wrong_name, missing_field, resolved, again) == (0, 0, 0, 1, 0)
    assert row["match"] == {"order": "A-7", "currency": "EUR"}
    assert run["status"] == "completed", run["error"]
    payload = {"order": "A-7", "currency": "EUR", "amount": 12}
    assert middle["awaited"] == {"type": "event", "data": payload}
    assert middle["result"]["awaited"] == ["event", payload]
    assert other_run["status"] == "awaiting"


async def test_an_object_in_a_match_must_equal_the_payloads_field(
    project_dir: Path, database_url: str
) -> None:
    payment = AwaitDefinition(type="event", event="paid", match={"order": "/go/order"})
    awaits = {("wait", "middle"): {"before": payment}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": {"id": 1, "lines": [1, 2]}})
        await wait_for_await(project, run_id, "middle")
        async with project.database.transaction() as conn:
            counts = [
                await publish_event(conn, "paid", payload)
                for payload in [
                    {"order": {"id": 1}},
                    {"order": {"id": 1, "lines": [1, 2], "x": 0}},
                    {"order": {"id": 1, "lines": [1]}},
                    {"order": {"lines": [1, 2], "id": 1}, "amount": 5},
                ]
            ]
        run = await wait_for_run(project, run_id)
    assert counts == [0, 0, 0, 1]
    assert run["status"] == "completed", run["error"]


async def test_an_event_emitted_by_another_runs_step_resolves_an_await_after(
    project_dir: Path, database_url: str
) -> None:
    # The await after `middle` matches on its result: {"middle": {"order": ...}}.
    payment = AwaitDefinition(type="event", event="payment.done", match={"order": "/middle/order"})
    awaits = {("wait", "middle"): {"after": payment}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "B-1"})
        await wait_for_await(project, run_id, "middle")
        payer = await start(project, "payer", {"order": "B-2"})
        assert (await wait_for_run(project, payer))["status"] == "completed"
        assert (await run_row(project, run_id))["status"] == "awaiting"
        await start(project, "payer", {"order": "B-1", "amount": 3})
        run = await wait_for_run(project, run_id)
        [row] = await await_rows(project, run_id)
    assert run["status"] == "completed", run["error"]
    assert row["resolution"] == {"order": "B-1", "amount": 3}


async def test_an_await_after_resolved_without_the_flows_definition_is_released_by_a_job(
    project_dir: Path, database_url: str
) -> None:
    payment = AwaitDefinition(type="event", event="payment.done")
    awaits = {("wait", "middle"): {"after": payment}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "C"})
        await wait_for_await(project, run_id, "middle")
        async with project.database.transaction() as conn:
            # As the API would, without the flows: a host serving the flow finishes the job.
            assert await publish_event(conn, "payment.done", {"ok": True}) == 1
        run = await wait_for_run(project, run_id)
    assert run["status"] == "completed", run["error"]


# -- timeouts -------------------------------------------------------------------------------


async def test_timeout_fail_fails_the_step_and_the_run(
    project_dir: Path, database_url: str
) -> None:
    never = AwaitDefinition(type="event", event="never", timeout=0.3)
    awaits = {("wait", "middle"): {"before": never}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "T"})
        run = await wait_for_run(project, run_id)
        [row] = await await_rows(project, run_id)
        types = await event_types(project, run_id)
        middle = await step_row(project, run_id, "middle")
    assert run["status"] == "failed"
    assert run["error"]["type"] == "AwaitTimeout" and run["error"]["step"] == "middle"
    assert middle["status"] == "failed"
    assert row["status"] == "timed_out"
    assert types[-3:] == [
        ("await.timed_out", "middle"),
        ("step.failed", "middle"),
        ("flow.failed", None),
    ]


async def test_timeout_continue_resolves_with_null(project_dir: Path, database_url: str) -> None:
    never = AwaitDefinition(type="webhook", timeout=0.3, timeout_action="continue")
    awaits = {("wait", "middle"): {"before": never}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "T"})
        run = await wait_for_run(project, run_id)
        [row] = await await_rows(project, run_id)
        middle = await step_row(project, run_id, "middle")
    assert run["status"] == "completed", run["error"]
    assert row["status"] == "timed_out" and row["resolution"] is None
    assert middle["status"] == "completed"
    assert middle["awaited"] == {"type": "webhook", "data": None}


async def test_timeout_retry_registers_again_then_fails(
    project_dir: Path, database_url: str
) -> None:
    never = AwaitDefinition(
        type="event", event="never", timeout=0.2, timeout_action="retry", attempts=3
    )
    awaits = {("wait", "middle"): {"after": never}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "R"})
        run = await wait_for_run(project, run_id)
        [row] = await await_rows(project, run_id)
        types = [t for t, step in await event_types(project, run_id) if step == "middle"]
        async with project.database.connection() as conn:
            cursor = await conn.execute(
                "SELECT data FROM flowhost.events WHERE run_id = %s AND type = %s ORDER BY id",
                (run_id, "await.registered"),
            )
            registered = [r["data"]["registration"] for r in await cursor.fetchall()]
    assert run["status"] == "failed" and "3 registrations" in run["error"]["message"]
    assert row["registration"] == 3 and row["status"] == "timed_out"
    assert registered == [1, 2, 3]
    assert types.count("await.timed_out") == 3
    assert types[-2:] == ["await.timed_out", "step.failed"]


# -- hooks ----------------------------------------------------------------------------------


async def test_hooks_run_on_register_resolve_and_timeout(
    project_dir: Path, database_url: str
) -> None:
    approval = AwaitDefinition(
        type="webhook", timeout=60, on_register="on_register", on_resolve="on_resolve"
    )
    reminder = AwaitDefinition(
        type="event",
        event="never",
        timeout=0.3,
        timeout_action="continue",
        on_timeout="on_timeout",
    )
    awaits = {("wait", "middle"): {"before": approval}, ("wait", "last"): {"before": reminder}}
    async with awaiting_host(
        project_dir, database_url, awaits, http=("127.0.0.1", 0), public_url="https://x.test"
    ) as (project, host):
        run_id = await start(project, "wait", {"order": "H"})
        await poll(
            project,
            "SELECT count(*) FROM flowhost.state WHERE run_id = %s AND key = 'register'",
            (run_id,),
        )
        [row] = await await_rows(project, run_id)
        assert host.http_url is not None
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{host.http_url}/hooks/await/{row['token']}", json={"approved": True}
            )
        assert answer.status_code == 202, answer.text
        run = await wait_for_run(project, run_id)
        await poll(
            project,
            "SELECT count(*) = 3 FROM flowhost.state WHERE run_id = %s"
            " AND key IN ('register', 'resolve', 'timeout')",
            (run_id,),
        )
        async with project.database.connection() as conn:
            state = await reads.state_of_run(conn, run_id)
    assert run["status"] == "completed", run["error"]
    register = state["register"]
    assert register["kind"] == "register" and register["subject"] == {"go": {"order": "H"}}
    assert register["await"]["url"] == f"https://x.test/hooks/await/{row['token']}"
    assert register["await"]["type"] == "webhook" and register["await"]["method"] == "POST"
    assert state["resolve"]["resolution"] == {"approved": True}
    assert state["timeout"]["kind"] == "timeout" and state["timeout"]["resolution"] is None
    assert state["timeout"]["subject"] == {"done": {"order": "H", "by": "middle"}}


async def test_a_failing_hook_is_an_event_and_never_holds_the_await_up(
    project_dir: Path, database_url: str
) -> None:
    short = time_await(0.2, on_register="broken_hook")
    awaits = {("wait", "last"): {"before": short}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "F"})
        run = await wait_for_run(project, run_id)
        failures = await poll(
            project,
            "SELECT count(*) = 2 AS done, array_agg(data ORDER BY id) AS data "
            "FROM flowhost.events WHERE run_id = %s AND type = 'await.hook_failed'",
            (run_id,),
        )
    assert run["status"] == "completed", run["error"]
    first, second = failures["data"]
    # `last` has attempts=2: the hook is tried twice, like the step would be.
    assert (first["attempt"], first["next_attempt"]) == (1, 2)
    assert (second["attempt"], second["next_attempt"]) == (2, None)
    assert second["error"]["message"] == "the mail server is down"


# -- webhooks -------------------------------------------------------------------------------


async def snapshot(project: Project, run_id: uuid.UUID) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was."""
    async with project.database.connection() as conn:
        events = await (
            await conn.execute(
                "SELECT id, type, data FROM flowhost.events WHERE run_id = %s ORDER BY id",
                (run_id,),
            )
        ).fetchall()
        rows = await (
            await conn.execute("SELECT * FROM flowhost.awaits WHERE run_id = %s", (run_id,))
        ).fetchall()
        steps = await (
            await conn.execute(
                "SELECT name, status, awaited FROM flowhost.steps WHERE run_id = %s ORDER BY name",
                (run_id,),
            )
        ).fetchall()
        run = await reads.get_run(conn, run_id)
    return events, rows, steps, run["status"]


async def test_webhook_answers_and_refusals_change_nothing(
    project_dir: Path, database_url: str
) -> None:
    schema = {
        "type": "object",
        "properties": {"approved": {"type": "boolean"}},
        "required": ["approved"],
    }
    approval = AwaitDefinition(type="webhook", method="PUT", schema=schema, timeout=60)
    awaits = {("wait", "middle"): {"before": approval}}
    async with awaiting_host(project_dir, database_url, awaits, http=("127.0.0.1", 0)) as (
        project,
        host,
    ):
        run_id = await start(project, "wait", {"order": "W"})
        await wait_for_await(project, run_id, "middle")
        [row] = await await_rows(project, run_id)
        url = f"{host.http_url}/hooks/await/{row['token']}"
        before = await snapshot(project, run_id)
        async with httpx.AsyncClient() as client:
            refusals = {
                "wrong method": await client.post(url, json={"approved": True}),
                "not json": await client.put(url, content=b"{nope"),
                "schema": await client.put(url, json={"approved": "yes"}),
                "unknown": await client.put(url[:-4] + "AAAA", json={"approved": True}),
            }
            after_refusals = await snapshot(project, run_id)
            resolved = await client.put(url, json={"approved": True})
            run = await wait_for_run(project, run_id)
            after = await snapshot(project, run_id)
            twice = await client.put(url, json={"approved": True})
            after_twice = await snapshot(project, run_id)

    assert {name: r.status_code for name, r in refusals.items()} == {
        "wrong method": 405,
        "not json": 422,
        "schema": 422,
        "unknown": 404,
    }
    for answer in [*refusals.values(), twice]:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == answer.status_code
        assert row["token"] not in answer.text
    assert refusals["wrong method"].headers["allow"] == "PUT"
    assert refusals["schema"].json()["errors"] == [
        {"pointer": "/approved", "message": "'yes' is not of type 'boolean'"}
    ]
    assert after_refusals == before
    assert resolved.status_code == 202, resolved.text
    assert resolved.json()["run_id"] == str(run_id)
    assert run["status"] == "completed", run["error"]
    assert twice.status_code == 409
    assert after_twice == after
    # No event or hook data holds the token.
    assert row["token"] not in repr(after[0])


async def test_webhook_after_its_timeout_is_gone(project_dir: Path, database_url: str) -> None:
    approval = AwaitDefinition(type="webhook", timeout=0.3)
    awaits = {("wait", "middle"): {"before": approval}}
    async with awaiting_host(project_dir, database_url, awaits, http=("127.0.0.1", 0)) as (
        project,
        host,
    ):
        run_id = await start(project, "wait", {"order": "G"})
        await wait_for_await(project, run_id, "middle")
        [row] = await await_rows(project, run_id)
        await wait_for_run(project, run_id)
        before = await snapshot(project, run_id)
        async with httpx.AsyncClient() as client:
            late = await client.post(
                f"{host.http_url}/hooks/await/{row['token']}", json={"approved": True}
            )
        after = await snapshot(project, run_id)
    assert late.status_code == 410
    assert late.headers["content-type"] == "application/problem+json"
    assert after == before


async def test_a_get_webhook_resolves_with_its_query_parameters(
    project_dir: Path, database_url: str
) -> None:
    approval = AwaitDefinition(type="webhook", method="GET")
    awaits = {("wait", "middle"): {"before": approval}}
    async with awaiting_host(project_dir, database_url, awaits, http=("127.0.0.1", 0)) as (
        project,
        host,
    ):
        run_id = await start(project, "wait", {"order": "Q"})
        await wait_for_await(project, run_id, "middle")
        [row] = await await_rows(project, run_id)
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"{host.http_url}/hooks/await/{row['token']}", params={"choice": "yes"}
            )
        await wait_for_run(project, run_id)
        middle = await step_row(project, run_id, "middle")
    assert answer.status_code == 202
    assert middle["result"]["awaited"] == ["webhook", {"choice": "yes"}]


# -- scale ----------------------------------------------------------------------------------


async def test_event_lookup_and_sweeper_use_indexes_with_many_waiting_awaits(
    project_dir: Path, database_url: str
) -> None:
    """The step path touches awaits only by an indexed lookup of an emitted event."""
    awaits = {("wait", "middle"): {"before": AwaitDefinition(type="event", event="x")}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        flow = project.catalog.flows["wait"]
        async with project.database.transaction() as conn:
            [run_id] = await start_runs(conn, flow, [{}])
            await conn.execute(
                "INSERT INTO flowhost.awaits (run_id, step, position, type, config, event_name,"
                " match, timeout_at) "
                "SELECT %s, 's' || i, 'before', 'event', '{}', 'payment.done',"
                " jsonb_build_object('order', 'O-' || i), now() + interval '1 day' "
                "FROM generate_series(1, 20000) AS i",
                (run_id,),
            )
            await conn.execute("ANALYZE flowhost.awaits")
            plans = {}
            queries: list[tuple[str, str, dict[str, Any]]] = [
                (
                    "event",
                    "find_event_awaits",
                    {"events": '[{"i":0,"name":"payment.done","payload":{"order":"O-5"}}]'},
                ),
                ("next", "next_await_due", {}),
                ("due", "lock_runs_with_due_awaits", {"limit": 100, "scan": 400}),
            ]
            for name, query, params in queries:
                cursor = await conn.execute("EXPLAIN " + QUERIES[query], params)
                plans[name] = "\n".join(r["QUERY PLAN"] for r in await cursor.fetchall())
            found = await (
                await conn.execute(
                    QUERIES["find_event_awaits"],
                    {"events": '[{"i":0,"name":"payment.done","payload":{"order":"O-5"}}]'},
                )
            ).fetchall()
    for name, plan in plans.items():
        assert "Seq Scan on awaits" not in plan, f"{name}:\n{plan}"
    assert len(found) == 1


async def test_await_sweeper_keeps_up_with_many_time_awaits(
    project_dir: Path, database_url: str
) -> None:
    awaits = {("wait", "middle"): {"before": time_await(0.5)}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        flow = project.catalog.flows["wait"]
        async with project.database.transaction() as conn:
            run_ids = await start_runs(conn, flow, [{"order": str(i)} for i in range(200)])
        finished = await asyncio.gather(*(wait_for_run(project, r, 60) for r in run_ids))
    assert {run["status"] for run in finished} == {"completed"}


# -- run control ---------------------------------------------------------------------------


async def test_a_replayed_step_awaits_again_before_it_runs(
    project_dir: Path, database_url: str
) -> None:
    from flowhost.engine import control

    awaits = {("wait", "middle"): {"before": time_await(0.2)}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        first = await start(project, "wait", {"order": "A-2"})
        assert (await wait_for_run(project, first))["status"] == "completed"
        async with project.database.transaction() as conn:
            replayed = await control.replay_run(
                conn, first, "middle", project.catalog.flows, by="test"
            )
        await wait_for_await(project, replayed.run_id, "middle")
        run = await wait_for_run(project, replayed.run_id)
        [row] = await await_rows(project, replayed.run_id)
        types = await event_types(project, replayed.run_id)

    assert run["status"] == "completed", run["error"]
    assert row["status"] == "resolved" and row["step"] == "middle"
    # The await comes before the step runs again, as in the first run.
    assert types.index(("await.registered", "middle")) < types.index(("step.started", "middle"))


async def test_a_retried_run_awaits_again_what_timed_out_before_its_step(
    project_dir: Path, database_url: str
) -> None:
    # The approval never came, so the run failed: a retry waits for it again rather than
    # running the step without it; once the event comes, the run completes.
    approval = AwaitDefinition(
        type="event", event="approved", match={"order": "/go/order"}, timeout=0.3
    )
    awaits = {("wait", "middle"): {"before": approval}}
    async with awaiting_host(project_dir, database_url, awaits) as (project, _):
        run_id = await start(project, "wait", {"order": "T"})
        failed = await wait_for_run(project, run_id)
        async with project.database.transaction() as conn:
            retried = await control.retry_run(conn, run_id, project.catalog.flows, by="test")
        assert retried.steps == {"middle": 2}
        [waiting] = await await_rows(project, run_id)
        assert (await run_row(project, run_id))["status"] == "awaiting"
        async with project.database.transaction() as conn:
            resolved = await publish_event(conn, "approved", {"order": "T"})
        run = await wait_for_run(project, run_id)
        types = [t for t, step in await event_types(project, run_id) if step == "middle"]
    assert failed["status"] == "failed"
    assert waiting["status"] == "waiting" and resolved == 1
    assert run["status"] == "completed"
    assert run["result"] == {"last": {"order": "T", "by": "middle"}}
    assert types.count("await.registered") == 2
    assert types.count("step.started") == 1  # never ran without its approval
