"""Await hooks and `ctx.awaited` in every runtime (a Python child, a Node child, the host's own
process), against a real Postgres: a hook runs by name from the step's file, its logs and
state changes land in the run, it cannot emit, and its failure is raised with its logs kept."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowhost.engine.executor import StepExecutor
from flowhost.errors import HookFailedError
from flowhost.project import Project, open_project
from flowhost.queue.jobs import RequeueJob
from flowhost.settings import load_settings
from flowhost.store.events import events_of_run
from flowhost.workers.supervisor import Supervisor
from flowhost_worker import Awaited
from flowhost_worker.testing import MemoryBackend
from tests.support.engine import start, write_functions

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")


def python_file(flow: str, isolation: str) -> str:
    return f"""
from flowhost_worker import Await, step


async def notify(data, ctx):
    ctx.logger.info("mail sent", url=data["url"], hook=ctx.hook)
    await ctx.state.set("mailed", data["url"])
    try:
        await ctx.emit("approved", {{}})
    except Exception as exc:
        ctx.logger.warning("emit refused", error=str(exc))


async def broken(data, ctx):
    ctx.logger.info("about to fail")
    raise RuntimeError("the mail server is down")


@step(
    flow="{flow}",
    entry=True,
    emits=["approved"],
    isolation="{isolation}",
    await_before=Await.webhook(on_register=notify, on_timeout=broken),
)
async def approve(data, ctx):
    awaited = ctx.awaited
    return None if awaited is None else {{"type": awaited.type, "data": awaited.data}}
"""


NODE_FILE = """
export const config = {
  flow: {
    name: 'node_flow', step: 'approve', role: 'entry', emits: ['approved'],
    awaitBefore: { type: 'webhook', hooks: { register: 'notify', timeout: 'broken' } },
  },
}

export async function notify(data, ctx) {
  ctx.logger.info('mail sent', { url: data.url, hook: ctx.hook })
  await ctx.state.set('mailed', data.url)
  try {
    await ctx.emit('approved', {})
  } catch (error) {
    ctx.logger.warn('emit refused', { error: error.message })
  }
}

export async function broken(data, ctx) {
  ctx.logger.info('about to fail')
  throw new RangeError('the mail server is down')
}

export default async (input, ctx) => ctx.awaited
"""

FLOWS = ("child_flow", "inprocess_flow", "node_flow")


@contextlib.asynccontextmanager
async def executor(
    tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[Project, StepExecutor]]:
    """The project's executor with a supervisor, and no queue consumer: nothing runs but what
    a test asks for."""
    write_functions(
        tmp_path,
        {
            "child.py": python_file("child_flow", "process"),
            "inprocess.py": python_file("inprocess_flow", "inprocess"),
            "approve.mjs": NODE_FILE,
        },
    )
    settings = load_settings(
        tmp_path,
        environ={"DATABASE_URL": database_url},
        warm_python=1,
        warm_node=1,
        kill_grace=0.5,
    )
    async with open_project(settings) as project:
        assert project.catalog.problems == []
        assert sorted(project.catalog.flows) == sorted(FLOWS)
        async with Supervisor(settings, project.catalog.commands, host_id="test") as supervisor:
            yield (
                project,
                StepExecutor(project.database, project.catalog, max_batch=4, supervisor=supervisor),
            )


async def run_events(project: Project, run_id: uuid.UUID) -> list[Any]:
    async with project.database.connection() as conn:
        return list(await events_of_run(conn, run_id, limit=1000))


async def state_of(project: Project, run_id: uuid.UUID) -> dict[str, Any]:
    async with project.database.connection() as conn:
        rows = await (
            await conn.execute("SELECT key, value FROM flowhost.state WHERE run_id = %s", (run_id,))
        ).fetchall()
    return {row["key"]: row["value"] for row in rows}


@pytest.mark.parametrize("flow", FLOWS)
async def test_a_hook_runs_in_the_steps_runtime_with_state_and_logs_but_no_emit(
    tmp_path: Path, database_url: str, flow: str
) -> None:
    async with executor(tmp_path, database_url) as (project, steps):
        run_id = await start(project, flow, {"amount": 12})
        url = "https://flowhost.example/hooks/awaits/1"
        await steps.run_hook(flow, "approve", run_id, "notify", "register", {"url": url})
        assert await state_of(project, run_id) == {"mailed": url}
        events = await run_events(project, run_id)
        logs = [(e.step, e.attempt, e.data) for e in events if e.type == "log"]
        assert logs[0] == (
            "approve",
            None,
            {
                "level": "info",
                "message": "mail sent",
                "fields": {"url": url, "hook": "register"},
                "hook": "register",
            },
        )
        refused = logs[1][2]
        assert (refused["level"], refused["message"]) == ("warning", "emit refused")
        assert "not available in an await hook" in refused["fields"]["error"]
        assert not any(e.type == "emit" for e in events)
        [state_event] = [e for e in events if e.type == "state.set"]
        assert (state_event.step, state_event.attempt) == ("approve", None)


@pytest.mark.parametrize("flow", FLOWS)
async def test_a_failing_hook_raises_with_its_error_and_keeps_its_logs(
    tmp_path: Path, database_url: str, flow: str
) -> None:
    async with executor(tmp_path, database_url) as (project, steps):
        run_id = await start(project, flow, {})
        with pytest.raises(HookFailedError, match="the mail server is down") as caught:
            await steps.run_hook(flow, "approve", run_id, "broken", "timeout", None)
        assert caught.value.error["type"] in ("RuntimeError", "RangeError")
        assert "the mail server is down" in caught.value.error["message"]
        logs = [e.data for e in await run_events(project, run_id) if e.type == "log"]
        assert logs[0]["message"] == "about to fail" and logs[0]["hook"] == "timeout"


async def test_only_declared_hooks_of_served_steps_run(tmp_path: Path, database_url: str) -> None:
    async with executor(tmp_path, database_url) as (project, steps):
        run_id = await start(project, "child_flow", {})
        with pytest.raises(LookupError, match="declares no resolve hook 'notify'"):
            await steps.run_hook("child_flow", "approve", run_id, "notify", "resolve", None)
        with pytest.raises(LookupError, match="declares no register hook 'approve'"):
            await steps.run_hook("child_flow", "approve", run_id, "approve", "register", None)
        with pytest.raises(RequeueJob):
            await steps.run_hook("elsewhere", "approve", run_id, "notify", "register", None)
        # The entry step's await is registered when the run starts; no hook ran.
        assert [e.type for e in await run_events(project, run_id)] == [
            "flow.started",
            "await.registered",
        ]


@pytest.mark.parametrize("flow", FLOWS)
async def test_a_step_sees_ctx_awaited_in_every_runtime(
    tmp_path: Path, database_url: str, flow: str
) -> None:
    async with executor(tmp_path, database_url) as (project, steps):
        step = project.catalog.flows[flow].step("approve")
        awaited = Awaited("webhook", {"approved": True, "by": "ana"})
        outcomes = [
            await steps.run_in_runtime(
                step,
                MemoryBackend(),
                run_id=uuid.uuid4(),
                attempt=1,
                max_attempts=1,
                input={},
                awaited=given,
            )
            for given in (awaited, Awaited("event", None), None)
        ]
        assert outcomes == [
            {"type": "webhook", "data": {"approved": True, "by": "ana"}},
            {"type": "event", "data": None},
            None,
        ]
