"""The engine end to end in one process: real Postgres, real queue, examples/orders."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from flowhost.db.database import Connection
from flowhost.engine.executor import StepExecutor
from flowhost.engine.orchestrator import AttemptRecord, Completion
from flowhost.errors import FlowhostError
from flowhost.project import open_project
from flowhost.queue.jobs import StepJob
from flowhost.settings import load_settings
from flowhost.store import reads, runs
from flowhost.store.events import events_of_run
from tests.support.engine import running_host, start, wait_for_run, write_functions

ORDER = {
    "id": "A-1",
    "customer": "ada@example.com",
    "items": [
        {"sku": "BOOK", "price": 10.0, "quantity": 2},
        {"sku": "MUG", "price": 5.0, "quantity": 1},
    ],
}


async def test_orders_flow_completes_with_retry_and_and_join(
    orders_project: Path, database_url: str
) -> None:
    async with running_host(orders_project, database_url) as project:
        run_id = await start(project, "orders", ORDER)
        run = await wait_for_run(project, run_id)
        async with project.database.connection() as conn:
            steps = {s["name"]: s for s in await reads.steps_of_run(conn, run_id)}
            events = await events_of_run(conn, run_id)
            state = await reads.state_of_run(conn, run_id)
            stats = await (
                await conn.execute(
                    "SELECT total, running, completed FROM flowhost.flow_stats "
                    "WHERE flow = 'orders'"
                )
            ).fetchone()

    assert run["status"] == "completed", run["error"]
    assert {name: s["status"] for name, s in steps.items()} == dict.fromkeys(
        ["validate", "charge", "reserve", "ship", "receipt"], "completed"
    )
    assert steps["reserve"]["attempt"] == 2  # failed once, succeeded on retry
    assert steps["validate"]["result"] == {"ok": True, "total": 25.0}
    # The run's result is the result of its last step.
    assert run["result"] == steps["ship"]["result"]
    assert run["result"]["tracking"] == "TRK-A-1-2"
    assert state["order"] == ORDER and state["shipment"]["tracking"] == "TRK-A-1-2"

    types = [e.type for e in events]
    assert types[0] == "flow.started" and types[-1] == "flow.completed"
    completed = [e.step for e in events if e.type == "step.completed"]
    assert sorted(completed) == ["charge", "receipt", "reserve", "ship", "validate"]
    assert completed[-1] == "ship"
    retries = [e for e in events if e.type == "step.retry"]
    assert [(e.step, e.data["error"]["type"]) for e in retries] == [("reserve", "ConnectionError")]
    assert any(e.type == "log" and e.data["message"] == "validated" for e in events)
    assert stats == {"total": 1, "running": 0, "completed": 1}


async def test_ship_input_is_the_payloads_of_both_events(
    orders_project: Path, database_url: str
) -> None:
    async with running_host(orders_project, database_url) as project:
        run_id = await start(project, "orders", ORDER)
        await wait_for_run(project, run_id)
        async with project.database.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT input FROM flowhost.steps WHERE run_id = %s AND name = 'ship'",
                    (run_id,),
                )
            ).fetchone()
    assert row is not None
    assert set(row["input"]) == {"order.charged", "order.reserved"}
    assert row["input"]["order.reserved"] == {"skus": ["BOOK", "MUG"]}


async def test_a_step_that_keeps_failing_fails_the_run(tmp_path: Path, database_url: str) -> None:
    project_dir = write_functions(
        tmp_path,
        {
            "flaky.py": """
from flowhost_worker import step

@step(flow="flaky", name="first", entry=True, attempts=3, backoff=0.01)
async def first(data, ctx):
    ctx.logger.warning("trying", attempt=ctx.attempt)
    raise RuntimeError(f"boom {ctx.attempt}")
"""
        },
    )
    async with running_host(project_dir, database_url) as project:
        run_id = await start(project, "flaky", {})
        run = await wait_for_run(project, run_id)
        async with project.database.connection() as conn:
            events = await events_of_run(conn, run_id)
    assert run["status"] == "failed"
    assert run["error"]["step"] == "first"
    assert run["error"]["message"] == "boom 3"
    assert [e.type for e in events if e.type.startswith(("step.", "flow."))] == [
        "flow.started",
        "step.started",
        "step.retry",
        "step.started",
        "step.retry",
        "step.started",
        "step.failed",
        "flow.failed",
    ]
    assert [e.data["fields"]["attempt"] for e in events if e.type == "log"] == [1, 2, 3]


async def test_a_branch_not_taken_is_skipped_and_the_run_completes(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(
        tmp_path,
        {
            "branch.py": """
from flowhost_worker import step

@step(flow="branch", name="decide", entry=True, emits=["go.left", "go.right"])
async def decide(data, ctx):
    await ctx.emit("go." + data["way"], {"way": data["way"]})
    return data["way"]

@step(flow="branch", name="left", subscribes=["go.left"])
async def left(events, ctx):
    return "went left"

@step(flow="branch", name="right", subscribes=["go.right"])
async def right(events, ctx):
    return "went right"
"""
        },
    )
    async with running_host(project_dir, database_url) as project:
        run_id = await start(project, "branch", {"way": "left"})
        run = await wait_for_run(project, run_id)
        async with project.database.connection() as conn:
            steps = {s["name"]: s["status"] for s in await reads.steps_of_run(conn, run_id)}
    assert run["status"] == "completed"
    assert run["result"] == "went left"
    assert steps == {"decide": "completed", "left": "completed", "right": "skipped"}


async def test_a_dead_branch_is_skipped_while_the_live_branch_still_runs(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(
        tmp_path,
        {
            "fork.py": """
from flowhost_worker import step

@step(flow="fork", name="decide", entry=True, emits=["go.left", "go.right"])
async def decide(data, ctx):
    await ctx.emit("go.left", {})
    return "left"

@step(flow="fork", name="left", subscribes=["go.left"], emits=["left.done"])
async def left(events, ctx):
    await ctx.emit("left.done", {})
    return "went left"

@step(flow="fork", name="right", subscribes=["go.right"], emits=["right.done"])
async def right(events, ctx):
    return "went right"

@step(flow="fork", name="after_right", subscribes=["right.done"])
async def after_right(events, ctx):
    return "after right"

@step(flow="fork", name="join", subscribes=["left.done", "right.done"])
async def join(events, ctx):
    return "joined"

@step(flow="fork", name="report", subscribes=["left.done"])
async def report(events, ctx):
    return "reported"
"""
        },
    )
    async with running_host(project_dir, database_url) as project:
        run_id = await start(project, "fork", {})
        run = await wait_for_run(project, run_id)
        async with project.database.connection() as conn:
            steps = {s["name"]: s["status"] for s in await reads.steps_of_run(conn, run_id)}
            events = await events_of_run(conn, run_id)
    assert run["status"] == "completed", run["error"]
    assert run["result"] == "reported"
    assert steps == {
        "decide": "completed",
        "left": "completed",
        "right": "skipped",
        "after_right": "skipped",
        "join": "skipped",
        "report": "completed",
    }
    # Skipped in the same transaction that completed `decide`: before `left` even started,
    # not when the run ran out of work.
    order = [(e.type, e.step) for e in events]
    skipped_at = [i for i, (kind, _) in enumerate(order) if kind == "step.skipped"]
    assert sorted(order[i][1] or "" for i in skipped_at) == ["after_right", "join", "right"]
    assert max(skipped_at) < order.index(("step.started", "left"))
    assert order.index(("step.completed", "decide")) < min(skipped_at)


async def test_emitting_an_undeclared_event_fails_the_step(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(
        tmp_path,
        {
            "loose.py": """
from flowhost_worker import step

@step(flow="loose", name="only", entry=True, emits=["declared"])
async def only(data, ctx):
    await ctx.emit("not.declared", {})
"""
        },
    )
    async with running_host(project_dir, database_url) as project:
        run = await wait_for_run(project, await start(project, "loose", {}))
    assert run["status"] == "failed"
    assert "declares emits=[declared]" in run["error"]["message"]


async def test_a_result_that_is_not_json_fails_the_step(tmp_path: Path, database_url: str) -> None:
    project_dir = write_functions(
        tmp_path,
        {
            "odd.py": """
from flowhost_worker import step

@step(flow="odd", name="only", entry=True)
async def only(data, ctx):
    return {1, 2}
"""
        },
    )
    async with running_host(project_dir, database_url) as project:
        run = await wait_for_run(project, await start(project, "odd", {}))
    assert run["status"] == "failed"
    assert run["error"]["type"] == "TypeError"
    assert "JSON" in run["error"]["message"]


async def test_state_is_scoped_to_the_run(tmp_path: Path, database_url: str) -> None:
    project_dir = write_functions(
        tmp_path,
        {
            "counter.py": """
from flowhost_worker import step

@step(flow="counter", name="count", entry=True)
async def count(data, ctx):
    before = await ctx.state.get("seen", 0)
    await ctx.state.set("seen", before + 1)
    await ctx.state.set("scratch", "x")
    await ctx.state.delete("scratch")
    return await ctx.state.get("seen")
"""
        },
    )
    async with running_host(project_dir, database_url) as project:
        first = await wait_for_run(project, await start(project, "counter", {}))
        second = await wait_for_run(project, await start(project, "counter", {}))
        async with project.database.connection() as conn:
            events = await events_of_run(conn, second["id"])
            state = await reads.state_of_run(conn, second["id"])
    assert first["result"] == 1 and second["result"] == 1
    assert state == {"seen": 1}
    assert [e.type for e in events if e.type.startswith("state.")] == [
        "state.set",
        "state.set",
        "state.delete",
    ]


async def test_many_runs_of_a_wide_fan_in_complete_with_every_payload(
    tmp_path: Path, database_url: str
) -> None:
    # Parallel steps of one run end in the same group-commit batch: the join must still see all.
    width = 6
    source = ["from flowhost_worker import step", ""]
    source += [
        "@step(flow='fan', name='start', entry=True, "
        f"emits=[{', '.join(repr(f'go.{i}') for i in range(width))}])",
        "async def start(data, ctx):",
        *(f"    await ctx.emit('go.{i}', {i})" for i in range(width)),
        "    return data",
        "",
    ]
    for i in range(width):
        source += [
            f"@step(flow='fan', name='branch{i}', subscribes=['go.{i}'], emits=['done.{i}'])",
            f"async def branch{i}(events, ctx):",
            f"    await ctx.emit('done.{i}', events['go.{i}'] * 10)",
            "",
        ]
    joined = ", ".join(repr(f"done.{i}") for i in range(width))
    source += [
        f"@step(flow='fan', name='join', subscribes=[{joined}])",
        "async def join(events, ctx):",
        "    return sorted(events.values())",
    ]
    project_dir = write_functions(tmp_path, {"fan.py": "\n".join(source) + "\n"})
    async with running_host(project_dir, database_url) as project:
        ids = [await start(project, "fan", {"n": n}) for n in range(40)]
        finished = [await wait_for_run(project, run_id) for run_id in ids]
    assert {run["status"] for run in finished} == {"completed"}
    assert all(run["result"] == [i * 10 for i in range(width)] for run in finished)


async def test_the_host_reconnects_when_postgres_drops_its_connections(
    tmp_path: Path, database_url: str
) -> None:
    """A Postgres restart or failover cuts every connection: runs in flight still complete."""
    source = (
        "import asyncio\n"
        "from flowhost_worker import step\n\n"
        "@step(flow='slow', name='wait', entry=True, emits=['waited'])\n"
        "async def wait(data, ctx):\n"
        "    await asyncio.sleep(0.5)\n"
        "    await ctx.emit('waited', data)\n\n"
        "@step(flow='slow', name='after', subscribes=['waited'])\n"
        "async def after(events, ctx):\n"
        "    return events['waited']\n"
    )
    project_dir = write_functions(tmp_path, {"slow.py": source})
    async with running_host(project_dir, database_url, heartbeat_timeout=2.0) as project:
        ids = [await start(project, "slow", n) for n in range(5)]
        async with project.database.connection() as conn:
            await wait_until_steps_run(conn, ids)
            cursor = await conn.execute(
                "SELECT count(pg_terminate_backend(pid)) AS cut FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert ((await cursor.fetchone()) or {}).get("cut", 0) >= 2
        finished = [await wait_for_run(project, run_id, timeout=60) for run_id in ids]
        async with project.database.connection() as conn:
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM flowhost.events "
                "WHERE type = 'step.completed' AND run_id = ANY(%s)",
                [ids],
            )
            completed_events = ((await cursor.fetchone()) or {}).get("n")
    assert [run["status"] for run in finished] == ["completed"] * 5
    assert [run["result"] for run in finished] == list(range(5))
    assert completed_events == 10  # each step completed once, none twice


async def test_a_lost_listening_connection_makes_the_host_reconnect(
    tmp_path: Path, database_url: str
) -> None:
    """Without its LISTEN connection a host would only poll; it reconnects instead."""
    project_dir = write_functions(tmp_path, {"one.py": ONE_STEP})
    async with running_host(project_dir, database_url) as project:
        async with project.database.connection() as conn:
            first = await listening_backend(conn)
            await conn.execute("SELECT pg_terminate_backend(%s)", [first])
            async with asyncio.timeout(10):
                while (second := await listening_backend(conn)) in (None, first):
                    await asyncio.sleep(0.05)
        run = await wait_for_run(project, await start(project, "one", 7), timeout=10)
    assert second != first
    assert run["status"] == "completed" and run["result"] == 7


ONE_STEP = (
    "from flowhost_worker import step\n\n"
    "@step(flow='one', name='only', entry=True)\n"
    "async def only(data, ctx):\n"
    "    return data\n"
)


async def listening_backend(conn: Connection) -> int | None:
    cursor = await conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND query LIKE 'LISTEN %%' ORDER BY backend_start DESC LIMIT 1"
    )
    row = await cursor.fetchone()
    return None if row is None else int(row["pid"])


async def wait_until_steps_run(conn: Connection, run_ids: list[uuid.UUID]) -> None:
    async with asyncio.timeout(10):
        while True:
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM flowhost.steps WHERE status = 'running' "
                "AND run_id = ANY(%s)",
                [run_ids],
            )
            if ((await cursor.fetchone()) or {}).get("n") == len(run_ids):
                return
            await asyncio.sleep(0.02)


HOSTILE_OUTPUT = (
    "import math\n"
    "from flowhost_worker import step\n\n"
    "@step(flow='hostile', name='only', entry=True, attempts=1)\n"
    "async def only(kind, ctx):\n"
    "    ctx.logger.info('nul \\0 in a log', ratio=math.nan, who=object)\n"
    "    if kind == 'result':\n"
    "        return {'text': 'a\\0b'}\n"
    "    if kind == 'raise':\n"
    "        raise RuntimeError('bad \\0 message')\n"
    "    return {'fine': kind}\n"
)


async def test_output_postgres_cannot_store_fails_only_its_own_attempt(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"hostile.py": HOSTILE_OUTPUT})
    async with running_host(project_dir, database_url) as project:
        kinds = ["ok", "result", "raise"] * 10
        ids = [await start(project, "hostile", kind) for kind in kinds]
        runs = [await wait_for_run(project, run_id) for run_id in ids]
        async with project.database.connection() as conn:
            logs = [e for e in await events_of_run(conn, ids[0]) if e.type == "log"]
    outcomes = {(kind, run["status"]) for kind, run in zip(kinds, runs, strict=True)}
    assert outcomes == {("ok", "completed"), ("result", "failed"), ("raise", "failed")}
    by_kind = dict(zip(kinds, runs, strict=False))
    assert "NUL" in by_kind["result"]["error"]["message"]
    assert by_kind["raise"]["error"]["message"] == "bad \ufffd message"
    assert logs[0].data["message"] == "nul \ufffd in a log"
    # A child makes its log fields storable before sending them: NaN and objects become text.
    fields = logs[0].data["fields"]
    assert fields["ratio"].lower() == "nan" and fields["who"] == "<class 'object'>"


async def test_a_result_postgres_refuses_fails_alone_in_its_batch(
    orders_project: Path, database_url: str
) -> None:
    """Group commit falls back to one transaction per result when Postgres refuses a batch."""
    settings = load_settings(orders_project, environ={"DATABASE_URL": database_url})
    async with open_project(settings) as project:
        flow = project.catalog.flows["orders"]
        good, bad = await start(project, "orders", ORDER), await start(project, "orders", ORDER)
        async with project.database.connection() as conn:
            claimed = await runs.claim_steps(
                conn,
                [(good, "validate", 1, flow.hash), (bad, "validate", 1, flow.hash)],
                stale_after=6.0,
            )
        assert len(claimed) == 2
        executor = StepExecutor(project.database, project.catalog, max_batch=8)
        outcomes = await executor._complete_batch(
            [
                Completion(
                    flow, StepJob(good, "orders", "validate", 1), {"ok": True}, AttemptRecord()
                ),
                # A lone surrogate: valid JSON text, refused by jsonb (as_json keeps it out of
                # real results; this stands for anything Postgres refuses).
                Completion(
                    flow, StepJob(bad, "orders", "validate", 1), {"x": "\ud800"}, AttemptRecord()
                ),
            ]
        )
        async with project.database.connection() as conn:
            statuses = {
                run_id: {s["name"]: s["status"] for s in await reads.steps_of_run(conn, run_id)}
                for run_id in (good, bad)
            }
    assert outcomes[0] is None and isinstance(outcomes[1], FlowhostError)
    assert statuses[good]["validate"] == "completed"
    assert statuses[bad] == {"validate": "running"}  # left for the executor to fail
