"""Run control through real hosts, Postgres and children: cancel stops running attempts on every
host, restart, replay from a step with its state rebuilt, retry of a failed run, step timeouts in
every runtime, and failures a run tolerates."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from flowhost.engine import control
from flowhost.engine.host import Host
from flowhost.errors import RunNotFoundError, RunStateError, StepNotFoundError
from flowhost.project import Project, open_project
from flowhost.settings import load_settings
from flowhost.store import reads
from flowhost.store.events import Event, events_of_run
from tests.support.cli import flowhost
from tests.support.engine import start, wait_for_run, write_functions

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")

KILL_GRACE = 0.5
T = TypeVar("T")


@contextlib.asynccontextmanager
async def serving(
    project_dir: Path, database_url: str, **settings: Any
) -> AsyncIterator[tuple[Project, Host]]:
    loaded = load_settings(
        project_dir,
        environ={"DATABASE_URL": database_url},
        heartbeat_timeout=5.0,
        kill_grace=KILL_GRACE,
        warm_python=1,
        warm_node=1,
        **settings,
    )
    async with open_project(loaded) as project:
        assert project.catalog.problems == []
        host = Host(project)
        stop = asyncio.Event()
        task = asyncio.create_task(host.serve(stop))
        try:
            yield project, host
        finally:
            stop.set()
            await task


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 20) -> T:
    """Poll `check` until it returns something (deadline-bounded)."""
    async with asyncio.timeout(timeout):
        while True:
            found = await check()
            if found is not None:
                return found
            await asyncio.sleep(0.02)


async def events(project: Project, run_id: uuid.UUID) -> list[Event]:
    async with project.database.connection() as conn:
        return await events_of_run(conn, run_id, limit=100_000)


async def steps(project: Project, run_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    async with project.database.connection() as conn:
        return {s["name"]: s for s in await reads.steps_of_run(conn, run_id)}


async def stats(project: Project, flow: str) -> dict[str, Any]:
    async with project.database.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT total, queued, running, awaiting, completed, failed, canceled, stalled "
                "FROM flowhost.flow_stats WHERE flow = %s",
                [flow],
            )
        ).fetchone()
    assert row is not None
    return dict(row)


async def state_value(project: Project, run_id: uuid.UUID, key: str) -> Any:
    async with project.database.connection() as conn:
        return (await reads.state_of_run(conn, run_id)).get(key)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped


# -- cancel -------------------------------------------------------------------------------------

BOTH_RUNTIMES = {
    "start.py": """
from flowhost_worker import step

@step(flow="both", name="start", entry=True, emits=["go"], isolation="inprocess")
async def start(data, ctx):
    await ctx.emit("go", {})
""",
    # Blocks its event loop: it cannot even read the host's cancel, only SIGTERM stops it.
    "py_wait.py": """
import os, time
from flowhost_worker import step

@step(flow="both", name="py_wait", subscribes=["go"], emits=["py.done"], attempts=3)
async def py_wait(data, ctx):
    await ctx.state.set("py_pid", os.getpid())
    time.sleep(60)
    await ctx.emit("py.done", {})
""",
    "node_wait.js": """
import { defineFunction } from '@flowhost/worker'
export const config = {
  flow: { name: 'both', step: 'node_wait', subscribes: ['go'], emits: ['node.done'] },
  attempts: 3,
}
export default defineFunction(async (input, ctx) => {
  await ctx.state.set('node_pid', process.pid)
  await new Promise((resolve) => setTimeout(resolve, 60000))
  await ctx.emit('node.done', {})
})
""",
    "after.py": """
from flowhost_worker import step

@step(flow="both", name="after", subscribes=["py.done", "node.done"], isolation="inprocess")
async def after(data, ctx):
    return "should never run"
""",
}


@needs_node
async def test_cancel_from_the_cli_stops_python_and_node_children_on_the_host(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, BOTH_RUNTIMES)
    # The host's own periodic check is too slow to matter: the notice stops the children.
    async with serving(tmp_path, database_url, cancel_check_interval=60) as (project, host):
        run_id = await start(project, "both", {})

        async def pids() -> tuple[int, int] | None:
            py = await state_value(project, run_id, "py_pid")
            node = await state_value(project, run_id, "node_pid")
            return (py, node) if py and node else None

        py_pid, node_pid = await eventually(pids)
        result = await asyncio.to_thread(
            flowhost,
            "runs",
            "cancel",
            str(run_id),
            "--reason",
            "no longer needed",
            "--json",
            project=tmp_path,
            database_url=database_url,
        )
        canceled_at = time.monotonic()
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["id"] == str(run_id) and answer["status"] == "canceled"
        assert sorted(answer["steps"]) == ["node_wait", "py_wait"]

        async def children_gone() -> float | None:
            return time.monotonic() if gone(py_pid) and gone(node_pid) else None

        # cancel; SIGTERM after kill_grace; the margin covers the notice and the watch interval.
        assert await eventually(children_gone, timeout=10) - canceled_at < KILL_GRACE + 1.5

        async def idle() -> bool | None:
            return True if host.attempts_in_flight == 0 else None

        await eventually(idle)
        run = await wait_for_run(project, run_id)
        history = await events(project, run_id)
        rows = await steps(project, run_id)
        counts = await stats(project, "both")
    assert run["status"] == "canceled" and run["finished_at"] is not None
    assert {name: row["status"] for name, row in rows.items()} == {
        "start": "completed",
        "py_wait": "canceled",
        "node_wait": "canceled",
    }
    assert all(row["attempt"] == 1 for row in rows.values())  # no retry after the cancel
    kinds = [e.type for e in history]
    assert "step.failed" not in kinds and "step.retry" not in kinds
    assert not any(e.step == "after" for e in history)
    [flow_canceled] = [e for e in history if e.type == "flow.canceled"]
    assert flow_canceled.data == {
        "by": "cli",
        "reason": "no longer needed",
        "previous_status": "running",
    }
    assert kinds[-1] == "flow.canceled"
    step_canceled = {e.step: e.data for e in history if e.type == "step.canceled"}
    assert step_canceled == {
        "py_wait": {"reason": "no longer needed", "previous_status": "running"},
        "node_wait": {"reason": "no longer needed", "previous_status": "running"},
    }
    assert counts["running"] == 0 and counts["canceled"] == 1 and counts["total"] == 1


SELF_CANCEL = {
    "cancel.py": """
import asyncio
from flowhost_worker import step

@step(flow="selfcancel", name="start", entry=True, emits=["go"], isolation="inprocess")
async def start(data, ctx):
    await ctx.emit("go", {})

@step(flow="selfcancel", name="slow", subscribes=["go"], emits=["slow.done"],
      isolation="inprocess")
async def slow(data, ctx):
    await ctx.state.set("slow", "started")
    await asyncio.sleep(60)
    await ctx.emit("slow.done", {})

@step(flow="selfcancel", name="decide", subscribes=["go"], emits=["decided"])
async def decide(data, ctx):
    while await ctx.state.get("slow") is None:
        await asyncio.sleep(0.01)
    return await ctx.flow.cancel()

@step(flow="selfcancel", name="after", subscribes=["slow.done"], isolation="inprocess")
async def after(data, ctx):
    return "never"
"""
}


SLEEPER = {
    "sleeper.py": """
import asyncio
from flowhost_worker import step

@step(flow="sleeper", name="sleep", entry=True, isolation="inprocess")
async def sleep(data, ctx):
    await ctx.state.set("asleep", True)
    await asyncio.sleep(60)
"""
}


async def test_ctx_flow_cancel_stops_an_in_process_step_of_the_run(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, SELF_CANCEL)
    async with serving(tmp_path, database_url) as (project, host):
        started = time.monotonic()
        run_id = await start(project, "selfcancel", {})
        run = await wait_for_run(project, run_id)

        async def idle() -> bool | None:
            return True if host.attempts_in_flight == 0 else None

        await eventually(idle)
        elapsed = time.monotonic() - started
        history = await events(project, run_id)
        rows = await steps(project, run_id)
    assert run["status"] == "canceled"
    assert elapsed < 20, "the in-process step slept on instead of being cancelled"
    assert rows["slow"]["status"] == "canceled" and rows["decide"]["status"] == "canceled"
    assert "after" not in rows
    [flow_canceled] = [e for e in history if e.type == "flow.canceled"]
    assert flow_canceled.data["by"] == f"step selfcancel/decide of run {run_id}"
    assert flow_canceled.data["previous_status"] == "running"
    assert "step.failed" not in [e.type for e in history]


async def test_an_attempt_is_stopped_even_when_its_host_missed_the_notice(
    tmp_path: Path, database_url: str
) -> None:
    """A run ended with no NOTIFY reaching the host (it was reconnecting, say): the host's own
    check finds the attempt's run over and stops it."""
    write_functions(tmp_path, SLEEPER)
    async with serving(tmp_path, database_url, cancel_check_interval=0.3) as (project, host):
        run_id = await start(project, "sleeper", {})
        await eventually(lambda: state_value(project, run_id, "asleep"))
        assert host.attempts_in_flight == 1
        async with project.database.transaction() as conn:
            # What cancel_run writes, without its notification.
            await conn.execute(
                "UPDATE flowhost.steps SET status = 'canceled' WHERE run_id = %s", [run_id]
            )
            await conn.execute(
                "UPDATE flowhost.runs SET status = 'canceled' WHERE id = %s", [run_id]
            )

        async def idle() -> bool | None:
            return True if host.attempts_in_flight == 0 else None

        await eventually(idle, timeout=10)
        history = await events(project, run_id)
    assert [e.type for e in history if e.step == "sleep"] == ["step.started", "state.set"]


async def test_cancel_of_queued_and_awaiting_steps_and_of_a_run_that_ended(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, SELF_CANCEL)
    settings = load_settings(tmp_path, environ={"DATABASE_URL": database_url})
    async with open_project(settings) as project:
        # No host serves the flow: the entry step stays queued. Another step waits on an await.
        run_id = await start(project, "selfcancel", {})
        async with project.database.transaction() as conn:
            await conn.execute(
                "INSERT INTO flowhost.steps (run_id, name, status) VALUES (%s, 'slow', 'awaiting')",
                [run_id],
            )
        async with project.database.transaction() as conn:
            canceled = await control.cancel_run(conn, run_id, by="test", reason="why not")
        assert canceled.previous_status == "running"
        assert sorted(canceled.steps) == ["slow", "start"]
        history = await events(project, run_id)
        previous = {e.step: e.data["previous_status"] for e in history if e.type == "step.canceled"}
        assert previous == {"start": "queued", "slow": "awaiting"}
        with pytest.raises(RunStateError, match="is canceled"):
            async with project.database.transaction() as conn:
                await control.cancel_run(conn, run_id, by="test")
        with pytest.raises(RunNotFoundError):
            async with project.database.transaction() as conn:
                await control.cancel_run(conn, uuid.uuid4(), by="test")
        assert (await stats(project, "selfcancel"))["canceled"] == 1
    # A host that starts now finds the entry job stale: nothing of the run starts.
    async with serving(tmp_path, database_url) as (project, _host):
        other = await start(project, "selfcancel", {})
        await eventually(lambda: state_value(project, other, "slow"))
        history = await events(project, run_id)
    assert "step.started" not in [e.type for e in history]


# -- restart, replay, retry ---------------------------------------------------------------------

PIPELINE = {
    "pipeline.py": """
import os, uuid
from pathlib import Path
from flowhost_worker import step

FLAG = Path(os.environ["PIPELINE_FLAG"])

@step(flow="pipeline", name="fetch", entry=True, emits=["fetched"], isolation="inprocess")
async def fetch(data, ctx):
    token = str(uuid.uuid4())  # differs on every run of this step
    await ctx.state.set("seen", ["fetch"])
    await ctx.state.set("scratch", 1)
    await ctx.emit("fetched", {"token": token, "n": data["n"]})
    return token

@step(flow="pipeline", name="transform", subscribes=["fetched"], emits=["transformed"],
      isolation="inprocess", attempts=2, backoff=0.01)
async def transform(data, ctx):
    before = {"seen": await ctx.state.get("seen"), "scratch": await ctx.state.get("scratch")}
    await ctx.state.set("seen", before["seen"] + ["transform"])
    await ctx.state.delete("scratch")
    if not FLAG.exists():
        raise RuntimeError("the flag is not set")
    await ctx.emit("transformed", {"n": data["fetched"]["n"] * 10})
    return before

@step(flow="pipeline", name="store", subscribes=["transformed"], isolation="inprocess")
async def store(data, ctx):
    return {"stored": data["transformed"]["n"], "seen": await ctx.state.get("seen")}
"""
}


@contextlib.asynccontextmanager
async def pipeline(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Project, Path]]:
    flag = tmp_path / "flag"
    monkeypatch.setenv("PIPELINE_FLAG", str(flag))
    write_functions(tmp_path / "project", PIPELINE)
    async with serving(tmp_path / "project", database_url) as (project, _host):
        yield project, flag


async def test_replay_reuses_earlier_results_and_rebuilds_the_state_of_then(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with pipeline(tmp_path, database_url, monkeypatch) as (project, flag):
        flag.touch()
        old_id = await start(project, "pipeline", {"n": 4})
        old = await wait_for_run(project, old_id)
        assert old["status"] == "completed", old["error"]
        old_steps = await steps(project, old_id)
        async with project.database.transaction() as conn:
            replayed = await control.replay_run(
                conn, old_id, "transform", project.catalog.flows, by="test"
            )
        assert replayed.reused == ["fetch"]
        new = await wait_for_run(project, replayed.run_id)
        new_steps = await steps(project, replayed.run_id)
        history = await events(project, replayed.run_id)
        async with project.database.connection() as conn:
            state = await reads.state_of_run(conn, replayed.run_id)
            new_row = await (
                await conn.execute(
                    "SELECT emitted, completed_steps FROM flowhost.runs WHERE id = %s",
                    [replayed.run_id],
                )
            ).fetchone()
    assert new["status"] == "completed", new["error"]
    assert history[0].type == "flow.started"
    assert history[0].data["replay_of"] == str(old_id)
    assert history[0].data["from_step"] == "transform"
    assert history[0].data["input"] == {"n": 4}
    # `fetch` did not run again: its recorded result and emit are reused.
    assert ("step.started", "fetch") not in [(e.type, e.step) for e in history]
    assert new_steps["fetch"]["result"] == old_steps["fetch"]["result"]
    assert new_steps["fetch"]["status"] == "completed"
    [copied] = [e for e in history if e.type == "step.completed" and e.step == "fetch"]
    assert copied.data["result"] == old_steps["fetch"]["result"] and "replayed_from" in copied.data
    assert new_row is not None and new_row["completed_steps"] == 3
    assert new_row["emitted"]["fetched"]["token"] == old_steps["fetch"]["result"]
    # `transform` saw the state as it was when it first started in the old run.
    assert new_steps["transform"]["result"] == {"seen": ["fetch"], "scratch": 1}
    assert new_steps["store"]["result"] == {"stored": 40, "seen": ["fetch", "transform"]}
    assert state == {"seen": ["fetch", "transform"]}
    assert [e.type for e in history].count("step.started") == 2


async def test_replay_checks_its_inputs(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with pipeline(tmp_path, database_url, monkeypatch) as (project, _flag):
        failed_id = await start(project, "pipeline", {"n": 1})
        assert (await wait_for_run(project, failed_id))["status"] == "failed"
        flows = project.catalog.flows
        with pytest.raises(StepNotFoundError, match="has no step 'nope'"):
            async with project.database.transaction() as conn:
                await control.replay_run(conn, failed_id, "nope", flows, by="test")
        with pytest.raises(RunStateError, match="never started"):
            async with project.database.transaction() as conn:
                await control.replay_run(conn, failed_id, "store", flows, by="test")
        with pytest.raises(RunNotFoundError):
            async with project.database.transaction() as conn:
                await control.replay_run(conn, uuid.uuid4(), "fetch", flows, by="test")
        # From the entry step: a new run of the same input, linked to the old one.
        async with project.database.transaction() as conn:
            replayed = await control.replay_run(conn, failed_id, "fetch", flows, by="test")
        assert replayed.reused == []
        assert (await wait_for_run(project, replayed.run_id))["status"] == "failed"
        [started] = [e for e in await events(project, replayed.run_id) if e.type == "flow.started"]
        assert started.data["replay_of"] == str(failed_id)


async def test_retry_runs_the_failed_step_again_and_moves_the_statistics(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with pipeline(tmp_path, database_url, monkeypatch) as (project, flag):
        run_id = await start(project, "pipeline", {"n": 2})
        failed = await wait_for_run(project, run_id)
        assert failed["status"] == "failed" and failed["error"]["step"] == "transform"
        assert failed["error"]["blocked"] == ["store"]
        assert (await stats(project, "pipeline"))["failed"] == 1
        flows = project.catalog.flows
        flag.touch()
        async with project.database.transaction() as conn:
            retried = await control.retry_run(conn, run_id, flows, by="test")
        assert retried.steps == {"transform": 3}  # attempts 1 and 2 failed
        run = await wait_for_run(project, run_id)
        rows = await steps(project, run_id)
        history = await events(project, run_id)
        counts = await stats(project, "pipeline")
        with pytest.raises(RunStateError, match="is completed"):
            async with project.database.transaction() as conn:
                await control.retry_run(conn, run_id, flows, by="test")
    assert run["status"] == "completed" and run["error"] is None
    assert run["result"] == {"stored": 20, "seen": ["fetch", "transform", "transform", "transform"]}
    assert rows["transform"]["attempt"] == 3 and rows["transform"]["max_attempts"] == 4
    kinds = [e.type for e in history]
    assert kinds.count("flow.failed") == 1 and kinds[-1] == "flow.completed"
    [retry] = [e for e in history if e.type == "flow.retried"]
    assert retry.data == {
        "by": "test",
        "previous_status": "failed",
        "steps": {"transform": 3},
        "unskipped": [],
    }
    assert kinds.index("flow.retried") > kinds.index("flow.failed")
    assert counts["failed"] == 0 and counts["completed"] == 1 and counts["running"] == 0
    assert counts["total"] == 1


async def test_restart_starts_the_same_input_again_and_cancels_a_live_run(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_functions(tmp_path, SLEEPER)
    async with pipeline(tmp_path, database_url, monkeypatch) as (project, flag):
        flag.touch()
        done_id = await start(project, "pipeline", {"n": 3})
        assert (await wait_for_run(project, done_id))["status"] == "completed"
        async with project.database.transaction() as conn:
            again = await control.restart_run(conn, done_id, project.catalog.flows, by="test")
        assert not again.canceled
        rerun = await wait_for_run(project, again.run_id)
        started = [e for e in await events(project, again.run_id) if e.type == "flow.started"]
    assert rerun["status"] == "completed" and rerun["input"] == {"n": 3}
    assert started[0].data["restart_of"] == str(done_id)
    # A live run: canceled, with the reason and the run that replaces it.
    async with serving(tmp_path, database_url) as (project, _host):
        live_id = await start(project, "sleeper", {"n": 1})
        await eventually(lambda: state_value(project, live_id, "asleep"))
        async with project.database.transaction() as conn:
            restarted = await control.restart_run(conn, live_id, project.catalog.flows, by="t")
        assert restarted.canceled
        old = await wait_for_run(project, live_id)
        history = await events(project, live_id)
        await eventually(lambda: state_value(project, restarted.run_id, "asleep"))
        async with project.database.transaction() as conn:
            await control.cancel_run(conn, restarted.run_id, by="test")
    assert old["status"] == "canceled"
    [canceled] = [e for e in history if e.type == "flow.canceled"]
    assert canceled.data["reason"] == "restarted"
    assert canceled.data["restarted_as"] == str(restarted.run_id)


# -- failures a run tolerates, and step timeouts -------------------------------------------------

PARALLEL = {
    "parallel.py": """
from flowhost_worker import step

@step(flow="parallel", name="start", entry=True, emits=["go"], isolation="inprocess")
async def start(data, ctx):
    await ctx.emit("go", data)

@step(flow="parallel", name="primary", subscribes=["go"], isolation="inprocess")
async def primary(data, ctx):
    if "primary" in data["go"]["fail"]:
        raise RuntimeError("primary is down")
    return "primary"

@step(flow="parallel", name="mirror", subscribes=["go"], isolation="inprocess")
async def mirror(data, ctx):
    if "mirror" in data["go"]["fail"]:
        raise RuntimeError("mirror is down")
    return "mirror"
"""
}


async def test_a_parallel_branch_may_fail_while_its_sibling_succeeds(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, PARALLEL)
    async with serving(tmp_path, database_url) as (project, _host):
        tolerated = await start(project, "parallel", {"fail": ["primary"]})
        both = await start(project, "parallel", {"fail": ["primary", "mirror"]})
        run = await wait_for_run(project, tolerated)
        failed = await wait_for_run(project, both)
        history = await events(project, tolerated)
        rows = await steps(project, tolerated)
        counts = await stats(project, "parallel")
    assert run["status"] == "completed", run["error"]
    assert run["result"] == "mirror"
    assert {n: r["status"] for n, r in rows.items()} == {
        "start": "completed",
        "primary": "failed",
        "mirror": "completed",
    }
    [completed] = [e for e in history if e.type == "flow.completed"]
    assert completed.data == {"result": "mirror", "tolerated_failures": ["primary"]}
    assert failed["status"] == "failed"
    assert failed["error"]["steps"] == ["mirror", "primary"]
    assert failed["error"]["step"] in ("mirror", "primary")
    assert counts["completed"] == 1 and counts["failed"] == 1 and counts["running"] == 0


TIMEOUTS = {
    "in_process.py": """
import asyncio
from flowhost_worker import step

@step(flow="t_inprocess", entry=True, isolation="inprocess", timeout=0.5, attempts=2,
      backoff=0.01)
async def run(data, ctx):
    await asyncio.sleep(30)
""",
    "py_child.py": """
import time
from flowhost_worker import step

@step(flow="t_python", entry=True, timeout=0.5, attempts=2, backoff=0.01)
async def run(data, ctx):
    time.sleep(30)
""",
    "node_child.js": """
import { defineFunction } from '@flowhost/worker'
export const config = {
  flow: { name: 't_node', step: 'run', role: 'entry' },
  timeout: 500, attempts: 2, backoff: { type: 'fixed', delay: 10 },
}
export default defineFunction(async () => { for (;;) {} })
""",
}


@needs_node
async def test_a_step_timeout_is_retried_then_fails_the_step_in_every_runtime(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(tmp_path, TIMEOUTS)
    async with serving(tmp_path, database_url) as (project, _host):
        ids = {
            flow: await start(project, flow, {}) for flow in ("t_inprocess", "t_python", "t_node")
        }
        for flow, run_id in ids.items():
            run = await wait_for_run(project, run_id, timeout=60)
            history = await events(project, run_id)
            assert run["status"] == "failed", (flow, run)
            assert run["error"]["type"] == "TimeoutError", (flow, run["error"])
            assert "timed out after 0.5s" in run["error"]["message"], (flow, run["error"])
            kinds = [(e.type, e.attempt) for e in history if e.type.startswith("step.")]
            assert kinds == [
                ("step.started", 1),
                ("step.retry", 1),
                ("step.started", 2),
                ("step.failed", 2),
            ], flow
            [retry] = [e for e in history if e.type == "step.retry"]
            assert "timed out" in retry.data["error"]["message"], flow


# -- the CLI ------------------------------------------------------------------------------------


async def test_the_cli_retries_replays_and_restarts_and_says_what_is_wrong(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with pipeline(tmp_path, database_url, monkeypatch) as (project, flag):
        run_id = await start(project, "pipeline", {"n": 5})
        assert (await wait_for_run(project, run_id))["status"] == "failed"
        project_dir = tmp_path / "project"

        def cli(*args: str) -> Any:
            return asyncio.to_thread(
                flowhost,
                "runs",
                *args,
                project=project_dir,
                database_url=database_url,
                PIPELINE_FLAG=str(flag),
            )

        unknown = await cli("retry", str(uuid.uuid4()))
        assert unknown.returncode == 3 and "no run" in unknown.stderr
        no_step = await cli("replay", str(run_id), "--from", "nope")
        assert no_step.returncode == 3 and "has no step 'nope'" in no_step.stderr
        flag.touch()
        retried = await cli("retry", str(run_id)[:8], "--json")
        assert retried.returncode == 0, retried.stderr
        assert json.loads(retried.stdout)["steps"] == {"transform": 3}
        assert (await wait_for_run(project, run_id))["status"] == "completed"
        again = await cli("retry", str(run_id))
        assert again.returncode == 6 and "only a failed or stalled run" in again.stderr
        replayed = await cli("replay", str(run_id), "--from", "store", "--json")
        assert replayed.returncode == 0, replayed.stderr
        replay = json.loads(replayed.stdout)
        assert replay["reused"] == ["fetch", "transform"]
        replay_run = await wait_for_run(project, uuid.UUID(replay["id"]))
        restarted = await cli("restart", str(run_id))
        assert restarted.returncode == 0, restarted.stderr
        new_id = uuid.UUID(restarted.stdout.split()[1])
        assert (await wait_for_run(project, new_id))["status"] == "completed"
        canceled = await cli("cancel", str(run_id))
        assert canceled.returncode == 6 and "is completed" in canceled.stderr
    assert replay_run["status"] == "completed"
    assert replay_run["result"]["stored"] == 50


async def test_retry_makes_skipped_steps_that_can_now_run_reachable_again(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPELINE_FLAG", str(tmp_path / "flag"))
    (tmp_path / "flag").touch()
    write_functions(tmp_path / "project", PIPELINE)
    settings = load_settings(tmp_path / "project", environ={"DATABASE_URL": database_url})
    async with open_project(settings) as project:
        run_id = await start(project, "pipeline", {"n": 7})
        # A failed run as a stalled or older run may hold it: `store` was skipped although only
        # the failed `transform` kept it from running.
        async with project.database.transaction() as conn:
            await conn.execute(
                "UPDATE flowhost.steps SET status = 'completed', result = '\"t\"' "
                "WHERE run_id = %s",
                [run_id],
            )
            await conn.execute(
                "INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input) "
                "VALUES (%(r)s, 'transform', 'failed', 2, 2, %(i)s), "
                "(%(r)s, 'store', 'skipped', 0, 1, NULL)",
                {"r": run_id, "i": json.dumps({"fetched": {"token": "t", "n": 7}})},
            )
            await conn.execute(
                "UPDATE flowhost.runs SET status = 'failed', finished_at = now(), "
                "emitted = %s WHERE id = %s",
                [json.dumps({"fetched": {"token": "t", "n": 7}}), run_id],
            )
            # (flow_stats follows the run's status by itself: a trigger on runs.)
            await conn.execute(
                "INSERT INTO flowhost.state (run_id, key, value, event_id) "
                "VALUES (%s, 'seen', '[\"fetch\"]', 0)",
                [run_id],
            )
            retried = await control.retry_run(conn, run_id, project.catalog.flows, by="test")
        assert retried.steps == {"transform": 3}
        assert retried.unskipped == ["store"]
        assert "store" not in await steps(project, run_id)
    async with serving(tmp_path / "project", database_url) as (project, _host):
        run = await wait_for_run(project, run_id)
        counts = await stats(project, "pipeline")
    assert run["status"] == "completed", run["error"]
    assert run["result"]["stored"] == 70
    assert (counts["running"], counts["failed"], counts["completed"]) == (0, 0, 1)


EITHER = {
    "either.py": """
import asyncio, os
from pathlib import Path
from flowhost_worker import step

@step(flow="either", name="start", entry=True, emits=["go"], isolation="inprocess")
async def start(data, ctx):
    await ctx.emit("go", {})

@step(flow="either", name="primary", subscribes=["go"], emits=["found"], isolation="inprocess")
async def primary(data, ctx):
    raise LookupError("primary found nothing")

@step(flow="either", name="fallback", subscribes=["go"], emits=["found"], isolation="inprocess")
async def fallback(data, ctx):
    while not Path(os.environ["EITHER_GO_ON"]).exists():
        await asyncio.sleep(0.01)
    return "found nothing either"  # and emits nothing

@step(flow="either", name="use", subscribes=["found"], isolation="inprocess")
async def use(data, ctx):
    return data
"""
}


async def test_a_completion_can_end_the_run_for_an_earlier_failure(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    go_on = tmp_path / "go-on"
    monkeypatch.setenv("EITHER_GO_ON", str(go_on))
    write_functions(tmp_path / "project", EITHER)
    async with serving(tmp_path / "project", database_url) as (project, _host):
        run_id = await start(project, "either", {})

        async def primary_failed() -> bool | None:
            rows = await steps(project, run_id)
            return True if rows.get("primary", {}).get("status") == "failed" else None

        await eventually(primary_failed)
        async with project.database.connection() as conn:
            assert (await reads.get_run(conn, run_id))["status"] == "running"  # tolerated so far
        go_on.touch()
        run = await wait_for_run(project, run_id)
        history = await events(project, run_id)
    assert run["status"] == "failed"
    assert run["error"]["step"] == "primary" and run["error"]["type"] == "LookupError"
    assert run["error"]["blocked"] == ["use"]
    kinds = [(e.type, e.step) for e in history]
    assert kinds.index(("step.completed", "fallback")) < kinds.index(("flow.failed", None))
