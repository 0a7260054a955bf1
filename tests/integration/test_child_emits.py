"""`ctx.emit` in Python and Node children, through a real host and Postgres: a child sends its
emits without waiting for the host, ahead of its answer, and they count with its result (all of
them, in order, however many came right before the return); an attempt that ends any other way
counts none; an emit the host refuses fails the attempt with the reason."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flowhost.project import Project
from flowhost.store import reads
from flowhost.store.events import events_of_run
from tests.integration.test_workers import serving
from tests.support.engine import start, wait_for_run, write_functions

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")

MANY = 500


def python_flow(flow: str, body: str) -> str:
    """`first` (entry, emits tick and done) runs `body`; `second` subscribes to done."""
    return (
        textwrap.dedent(f'''
        import os
        from flowhost_worker import step

        @step(flow="{flow}", name="first", entry=True, emits=["tick", "done"])
        async def first(data, ctx):
        ''')
        + textwrap.indent(textwrap.dedent(body), "    ")
        + textwrap.dedent(f'''

        @step(flow="{flow}", name="second", subscribes=["done"])
        async def second(events, ctx):
            return events
        ''')
    )


def node_flow(flow: str, body: str) -> dict[str, str]:
    first = (
        "import { defineFunction } from '@flowhost/worker'\n"
        f"export const config = {{ flow: {{ name: '{flow}', step: 'first', role: 'entry', "
        "emits: ['tick', 'done'] } }\n"
        f"export default defineFunction(async (input, ctx) => {{\n{body}\n}})\n"
    )
    second = (
        "import { defineFunction } from '@flowhost/worker'\n"
        f"export const config = {{ flow: {{ name: '{flow}', step: 'second', "
        "subscribes: ['done'] } }\n"
        "export default defineFunction(async (events) => events)\n"
    )
    return {f"{flow}/first.js": first, f"{flow}/second.js": second}


async def run_to_end(
    project: Project, flow: str
) -> tuple[dict[str, Any], list[tuple[str, Any]], dict[str, dict[str, Any]]]:
    """Start a run of `flow` and wait for its end: the run, its emits (name, payload) in order,
    its steps by name."""
    run_id = await start(project, flow, {})
    run = await wait_for_run(project, run_id, timeout=60)
    async with project.database.connection() as conn:
        events = await events_of_run(conn, run_id, limit=100_000)
        steps = await reads.steps_of_run(conn, run_id)
    emits = [(e.data["name"], e.data["payload"]) for e in events if e.type == "emit"]
    return run, emits, {step["name"]: step for step in steps}


async def test_every_emit_made_right_before_returning_counts_in_order(
    tmp_path: Path, database_url: str
) -> None:
    python_body = f"""
    for n in range({MANY}):
        await ctx.emit("tick", n)
    await ctx.emit("done", {{"count": {MANY}}})
    return "returned"
    """
    node_body = f"""
    for (let n = 0; n < {MANY}; n++) await ctx.emit('tick', n)
    ctx.emit('done', {{ count: {MANY} }})  // not awaited: it still leaves ahead of the answer
    return 'returned'
    """
    write_functions(
        tmp_path,
        {"py_many.py": python_flow("py_many", python_body), **node_flow("node_many", node_body)},
    )
    async with serving(tmp_path, database_url) as (project, _host):
        for flow in ("py_many", "node_many"):
            run, emits, steps = await run_to_end(project, flow)
            assert run["status"] == "completed", (flow, run)
            expected = [("tick", n) for n in range(MANY)] + [("done", {"count": MANY})]
            assert emits == expected, flow
            assert steps["first"]["result"] == "returned"
            assert steps["second"]["result"] == {"done": {"count": MANY}}


async def test_emits_of_an_attempt_that_crashes_before_its_answer_do_not_count(
    tmp_path: Path, database_url: str
) -> None:
    # The state call makes sure the emit reached the host before the crash: the host has it,
    # and must drop it with the attempt.
    python_body = """
    await ctx.emit("done", 1)
    await ctx.state.list()
    os._exit(3)
    """
    node_body = """
    await ctx.emit('done', 1)
    await ctx.state.list()
    process.exit(3)
    """
    write_functions(
        tmp_path,
        {
            "py_crash.py": python_flow("py_crash", python_body),
            **node_flow("node_crash", node_body),
        },
    )
    async with serving(tmp_path, database_url) as (project, _host):
        for flow in ("py_crash", "node_crash"):
            run, emits, steps = await run_to_end(project, flow)
            assert run["status"] == "failed", (flow, run)
            assert "exit status 3" in run["error"]["message"], flow
            assert emits == [], flow
            assert steps["first"]["status"] == "failed"
            assert steps.get("second", {}).get("started_at") is None, flow


async def test_an_undeclared_emit_from_a_child_fails_the_attempt_with_the_reason(
    tmp_path: Path, database_url: str
) -> None:
    # The SDKs refuse it in the step; a child that sends it anyway (here: a Python SDK told
    # the name is declared) is refused by the host, and its attempt fails though it returned.
    refused_in_step = 'await ctx.emit("tick", 1)\nawait ctx.emit("undeclared", None)\nreturn 1'
    refused_by_host = """
    ctx._backend._emits += ("undeclared",)
    await ctx.emit("tick", 1)
    await ctx.emit("undeclared", None)
    return "returned"
    """
    node_body = "await ctx.emit('tick', 1)\nawait ctx.emit('undeclared', null)\nreturn 1"
    write_functions(
        tmp_path,
        {
            "py_step.py": python_flow("py_step", refused_in_step),
            "py_host.py": python_flow("py_host", refused_by_host),
            **node_flow("node_step", node_body),
        },
    )
    reason = "step 'first' emits 'undeclared' but declares emits=[tick, done]"
    async with serving(tmp_path, database_url) as (project, _host):
        for flow, kind in [
            ("py_step", "ValueError"),
            ("node_step", "RangeError"),
            ("py_host", "EmitRefused"),
        ]:
            run, emits, steps = await run_to_end(project, flow)
            assert run["status"] == "failed", (flow, run)
            assert run["error"]["type"] == kind, (flow, run["error"])
            assert reason in run["error"]["message"], (flow, run["error"])
            assert emits == [], flow  # not even the declared one before it
            assert steps["first"]["status"] == "failed"
    assert "the host refused ctx.emit('undeclared')" in run["error"]["message"]
