"""Steps in child processes, through a real host and Postgres: crashes, timeouts, memory caps
and floods of output fail only their own attempt, with the reason in the run; the host keeps
serving; nothing is left behind; a child sees only the environment its function declares."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowhost.engine.discovery import discover
from flowhost.engine.host import Host
from flowhost.project import Project, open_project
from flowhost.settings import load_settings
from flowhost.store import reads
from flowhost.store.events import events_of_run
from flowhost.workers import supervisor as supervisor_module
from flowhost.workers.commands import RuntimeCommands
from flowhost.workers.supervisor import Supervisor
from flowhost_worker.testing import MemoryBackend
from tests.support.engine import start, wait_for_run, write_functions
from tests.support.processes import ChildrenWatch

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")

HEALTHY = """
from flowhost_worker import step

@step(flow="healthy", entry=True)
async def ok(data, ctx):
    return {"pid_differs": __import__("os").getpid() != data["host_pid"]}
"""


def python_step(flow: str, body: str, **options: Any) -> str:
    extra = "".join(f", {key}={value!r}" for key, value in options.items())
    return textwrap.dedent(f'''
        import os, signal, sys
        from flowhost_worker import step

        @step(flow="{flow}", entry=True{extra})
        async def run(data, ctx):
        ''') + textwrap.indent(textwrap.dedent(body), "    ")


def node_step(flow: str, body: str, **config: Any) -> str:
    extra = "".join(f", {key}: {value!r}" for key, value in config.items()).replace("'", '"')
    return (
        "import { defineFunction } from '@flowhost/worker'\n"
        f"export const config = {{ flow: {{ name: '{flow}', step: 'run', role: 'entry' }}"
        f"{extra} }}\n"
        f"export default defineFunction(async (input, ctx) => {{\n{body}\n}})\n"
    )


@contextlib.asynccontextmanager
async def serving(project_dir: Path, database_url: str) -> AsyncIterator[tuple[Project, Host]]:
    settings = load_settings(
        project_dir,
        environ={"DATABASE_URL": database_url},
        heartbeat_timeout=5.0,
        kill_grace=0.5,
        warm_python=1,
        warm_node=1,
    )
    async with open_project(settings) as project:
        assert project.catalog.problems == []
        host = Host(project)
        stop = asyncio.Event()
        task = asyncio.create_task(host.serve(stop))
        try:
            yield project, host
        finally:
            stop.set()
            await task


def assert_nothing_left(pids: set[int], directory: Path | None, watch: ChildrenWatch) -> None:
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived the host"
    assert watch.started_since() == [], "the test process has children left"
    assert directory is None or not directory.exists(), "the socket directory was not removed"


def test_the_leak_check_sees_the_children_started_since_it_began() -> None:
    # Children from before (the session's brokers) are not this test's leak; a new one is.
    older = subprocess.Popen(["sleep", "30"])
    try:
        watch = ChildrenWatch()
        assert watch.started_since() == []
        newer = subprocess.Popen(["sleep", "30"])
        try:
            assert watch.started_since() == [newer.pid]
        finally:
            newer.kill()
            newer.wait()
        assert watch.started_since() == []
    finally:
        older.kill()
        older.wait()


async def failure_of(project: Project, run_id: uuid.UUID) -> dict[str, Any]:
    run = await wait_for_run(project, run_id, timeout=60)
    assert run["status"] == "failed", run
    return dict(run["error"])


async def logs_of(project: Project, run_id: uuid.UUID) -> list[dict[str, Any]]:
    async with project.database.connection() as conn:
        events = await events_of_run(conn, run_id, limit=100_000)
    return [e.data for e in events if e.type == "log"]


CRASHES = {
    "py_segfault": (python_step("py_segfault", "os.kill(os.getpid(), signal.SIGSEGV)"), "SIGSEGV"),
    "py_exit": (python_step("py_exit", "os._exit(1)"), "exit status 1"),
    "node_exit": (node_step("node_exit", "process.exit(1)"), "exit status 1"),
    "py_timeout": (python_step("py_timeout", "while True: pass", timeout=1), "timed out after 1s"),
    "node_timeout": (node_step("node_timeout", "for (;;) {}", timeout=1000), "timed out after 1s"),
    "py_memory": (
        python_step("py_memory", "hog = [bytearray(8 << 20) for _ in range(100)]", memory=128),
        "memory limit exceeded",
    ),
    "node_memory": (
        node_step(
            "node_memory", "const hog = []; for (;;) hog.push(new Array(1e6).fill(7))", memory=64
        ),
        "memory limit exceeded",
    ),
}


async def test_crashes_timeouts_and_memory_caps_fail_only_their_own_attempt(
    tmp_path: Path, database_url: str
) -> None:
    files = {
        f"{name}.{'js' if name.startswith('node') else 'py'}": src
        for name, (src, _) in CRASHES.items()
    }
    write_functions(tmp_path, {**files, "healthy.py": HEALTHY})
    watch = ChildrenWatch()
    seen: set[int] = set()
    async with serving(tmp_path, database_url) as (project, host):
        runs = {name: await start(project, name, {}) for name in CRASHES}
        healthy = [await start(project, "healthy", {"host_pid": os.getpid()}) for _ in range(5)]
        for name, (_, reason) in CRASHES.items():
            error = await failure_of(project, runs[name])
            assert reason in error["message"], (name, error)
        for run_id in healthy:
            run = await wait_for_run(project, run_id)
            assert run["status"] == "completed" and run["result"] == {"pid_differs": True}
        assert host.supervisor is not None
        directory = host.supervisor.directory
        seen.update(w.process.pid for w in host.supervisor.workers)
    assert_nothing_left(seen, directory, watch)


async def test_megabytes_of_output_do_not_block_the_child_or_flood_the_run(
    tmp_path: Path, database_url: str
) -> None:
    body = """
    for i in range(60_000):
        print(f"line {i:06d} " + "x" * 80)
    sys.stderr.write("the end\\n")
    return "printed"
    """
    write_functions(tmp_path, {"chatty.py": python_step("chatty", body)})
    async with serving(tmp_path, database_url) as (project, _host):
        run_id = await start(project, "chatty", {})
        run = await wait_for_run(project, run_id, timeout=60)
        assert run["status"] == "completed" and run["result"] == "printed"
        logs = await logs_of(project, run_id)
    printed = [log for log in logs if log["fields"].get("stream") == "stdout"]
    assert printed[0]["message"].startswith("line 000000")
    assert 1000 < len(printed) < 60_000
    assert sum(len(log["message"]) for log in printed) <= 1024 * 1024
    assert any("bytes of output were not kept" in log["message"] for log in logs)


LATE_PY = """
print("before the answer")
print("partial line, no newline", end="")
subprocess.Popen(["sh", "-c", "sleep 0.3; echo after the answer"])  # inherits stdout
return "done"
"""
LATE_JS = """
process.stdout.write('before the answer\\n')
process.stdout.write('partial line, no newline')
const stdio = ['ignore', 'inherit', 'inherit']
spawn('sh', ['-c', 'sleep 0.3; echo after the answer'], { stdio }).unref()
return 'done'
"""


async def test_output_before_the_answer_is_recorded_with_it_and_later_output_after_it(
    tmp_path: Path, database_url: str
) -> None:
    # The host records an attempt's outcome as soon as the child answered (the child flushed
    # its output first), without waiting for the child to exit; a grandchild that writes later
    # is not lost: its lines become late log events of the attempt, after step.completed.
    js = "import { spawn } from 'node:child_process'\n" + node_step("late_js", LATE_JS)
    write_functions(
        tmp_path,
        {"late_py.py": "import subprocess\n" + python_step("late_py", LATE_PY), "late_js.js": js},
    )
    async with serving(tmp_path, database_url) as (project, _host):
        for flow in ("late_py", "late_js"):
            run_id = await start(project, flow, {})
            run = await wait_for_run(project, run_id)
            assert run["status"] == "completed" and run["result"] == "done", run
            async with asyncio.timeout(10):
                while True:
                    async with project.database.connection() as conn:
                        events = await events_of_run(conn, run_id)
                    printed = {
                        e.data["message"]: e for e in events if "stream" in e.data.get("fields", {})
                    }
                    if "after the answer" in printed:
                        break
                    await asyncio.sleep(0.05)
            [completed] = [e for e in events if e.type == "step.completed"]
            for line in ("before the answer", "partial line, no newline"):
                assert printed[line].id < completed.id, (flow, line)
                assert printed[line].data["fields"] == {"stream": "stdout"}
            late = printed["after the answer"]
            assert late.id > completed.id and late.attempt == 1, flow
            assert late.data["fields"] == {"stream": "stdout", "late": True}


async def test_a_child_that_answered_exits_in_the_background_holding_its_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A single-use child is not waited for after its answer: it exits once steps are quiet
    # (never, here), is never handed another job, and counts against max_children until it is
    # gone. A job that needs its slot makes it exit at once.
    monkeypatch.setattr(supervisor_module, "QUIET_PERIOD", 60.0)
    monkeypatch.setattr(supervisor_module, "RETIRE_AT_MOST", 60.0)
    write_functions(tmp_path, {"pid.py": python_step("pid", "print('hi'); return os.getpid()")})
    watch = ChildrenWatch()
    settings = load_settings(tmp_path, environ={}, warm_python=1, max_children=1, kill_grace=0.5)
    commands = RuntimeCommands.from_settings(settings)
    [step] = (await discover(settings.functions_path, commands)).flows["pid"].steps.values()
    async with Supervisor(settings, commands, host_id="test") as supervisor:

        async def attempt(backend: MemoryBackend) -> int:
            pid = await asyncio.wait_for(
                supervisor.run(step, backend, run_id="r", attempt=1, max_attempts=1, input=None),
                30,
            )
            assert isinstance(pid, int)
            return pid

        first_logs = MemoryBackend()
        first = await attempt(first_logs)
        assert [message for _, message, _ in first_logs.logs] == ["hi"]
        assert Path(f"/proc/{first}").exists(), "the child that answered was waited for"
        lingering = [w for w in supervisor.workers if w.process.pid == first]
        assert lingering and lingering[0].job is not None  # still bound: late output is its own
        second = await attempt(MemoryBackend())  # needs the only slot: the first exits now
        assert second != first
        await asyncio.wait_for(asyncio.shield(lingering[0].process.exited), 10)
        workers = supervisor.workers
    assert_nothing_left({first, second, *(w.process.pid for w in workers)}, None, watch)


async def test_a_child_sees_only_the_environment_its_function_declares(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("FLOWHOST_TEST_SECRET", "s3cret")
    monkeypatch.setenv("SHARED_WITH_STEP", "visible")
    write_functions(
        tmp_path,
        {
            "py_env.py": python_step(
                "py_env", "return sorted(os.environ)", env=["SHARED_WITH_STEP"]
            ),
            "node_env.js": node_step(
                "node_env", "return Object.keys(process.env).sort()", env=["SHARED_WITH_STEP"]
            ),
        },
    )
    async with serving(tmp_path, database_url) as (project, _host):
        for flow in ("py_env", "node_env"):
            run = await wait_for_run(project, await start(project, flow, {}))
            assert run["status"] == "completed", run
            names = set(run["result"])
            assert "SHARED_WITH_STEP" in names, flow
            assert not names & {"DATABASE_URL", "FLOWHOST_TEST_SECRET"}, flow


async def test_python_children_run_the_sdk_of_the_hosts_checkout_or_the_one_named(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Children get a scrubbed environment (no PYTHONPATH): without this, the children of a
    # checkout would run whatever flowhost-worker the interpreter has installed.
    project = tmp_path / "project"
    write_functions(
        project,
        {"sdk.py": python_step("sdk", "import flowhost_worker; return flowhost_worker.__file__")},
    )
    monkeypatch.delenv("FLOWHOST_PYTHON_SDK", raising=False)
    checkout = Path(__file__).resolve().parents[2] / "sdk-python" / "src"
    named = tmp_path / "sdk"
    shutil.copytree(checkout / "flowhost_worker", named / "flowhost_worker")
    for sdk, expected in ((None, checkout), (named, named)):
        if sdk is not None:
            monkeypatch.setenv("FLOWHOST_PYTHON_SDK", str(sdk))
        async with serving(project, database_url) as (served, _host):
            run = await wait_for_run(served, await start(served, "sdk", {}))
        assert run["status"] == "completed", run
        assert Path(run["result"]).is_relative_to(expected), (run["result"], expected)


async def test_the_orders_example_runs_its_python_and_node_steps_in_children(
    orders_project: Path, database_url: str
) -> None:
    async with serving(orders_project, database_url) as (project, _host):
        run_id = await start(
            project,
            "orders",
            {
                "id": "A-7",
                "customer": "ada@example.com",
                "items": [{"sku": "BOOK-42", "price": 18.5, "quantity": 2}],
            },
        )
        run = await wait_for_run(project, run_id, timeout=60)
        assert run["status"] == "completed", run
        async with project.database.connection() as conn:
            steps = {s["name"]: s for s in await reads.steps_of_run(conn, run_id)}
            state = await reads.state_of_run(conn, run_id)
    assert steps["receipt"]["result"]["total"] == 37.0
    assert state["receipt"]["chargeId"] == steps["charge"]["result"]["charge_id"]
    assert not [name for name in sys.modules if name.startswith("flowhost_functions")]


async def test_the_invoices_example_runs_with_its_own_venv_and_npm_package(
    database_url: str,
) -> None:
    invoices = Path(__file__).resolve().parents[2] / "examples" / "invoices"
    async with serving(invoices, database_url) as (project, _host):
        run_id = await start(
            project,
            "invoices",
            {
                "customer": "Grace",
                "currency": "EUR",
                "due_in_days": 30,
                "lines": [
                    {"item": "day", "cents": 125000, "quantity": 3},
                    {"item": "x", "cents": 48050},
                ],
            },
        )
        run = await wait_for_run(project, run_id, timeout=60)
        assert run["status"] == "completed", run
        async with project.database.connection() as conn:
            steps = {s["name"]: s for s in await reads.steps_of_run(conn, run_id)}
    # humanize (only in the venv) phrased the total, dayjs (only in node_modules) the date.
    assert steps["summarize"]["result"]["total_text"] == "4,230.50 EUR"
    assert steps["summarize"]["result"]["lines_text"] == "two"
    assert steps["render"]["result"]["text"].startswith(
        "Invoice for Grace: two lines, 4,230.50 EUR, due 20"
    )


async def test_a_step_logging_in_a_loop_keeps_a_bounded_number_of_logs(
    tmp_path: Path, database_url: str
) -> None:
    body = """
    for i in range(12_000):
        ctx.logger.info("tick", i=i)
    return "done"
    """
    write_functions(tmp_path, {"loud.py": python_step("loud", body)})
    async with serving(tmp_path, database_url) as (project, _host):
        run_id = await start(project, "loud", {})
        run = await wait_for_run(project, run_id, timeout=60)
        assert run["status"] == "completed" and run["result"] == "done"
        logs = await logs_of(project, run_id)
    ticks = [log for log in logs if log["message"] == "tick"]
    assert ticks[0]["fields"] == {"i": 0}
    assert len(ticks) <= 10_000
    warnings = [log["message"] for log in logs if log["level"] == "warning"]
    assert any("were not kept" in w or "were dropped" in w for w in warnings), warnings


async def test_preload_reuse_inprocess_cpu_and_concurrency_options(
    tmp_path: Path, database_url: str
) -> None:
    write_functions(
        tmp_path,
        {
            # Under `_lib`, so discovery skips it; the zygote imports it once (`preload`).
            "_lib/warm.py": "import os\nIMPORTED_IN = os.getpid()\n",
            "preloaded.py": python_step(
                "preloaded",
                "return sys.modules['_lib.warm'].IMPORTED_IN != os.getpid()",
                preload=["_lib.warm"],
            ),
            "reused.py": python_step("reused", "return os.getpid()", reuse=3),
            "here.py": python_step("here", "return os.getpid()", isolation="inprocess"),
            "spin.py": python_step("spin", "while True: pass", cpu=1, timeout=20),
            "single.py": python_step(
                "single",
                "import asyncio, time\nstarted = time.time()\nawait asyncio.sleep(0.3)\n"
                "return [started, time.time()]",
                concurrency=1,
            ),
        },
    )
    async with serving(tmp_path, database_url) as (project, _host):
        run = await wait_for_run(project, await start(project, "preloaded", {}))
        assert run["result"] is True, run  # imported in the zygote, not in the child

        pids = []
        for _ in range(4):
            run = await wait_for_run(project, await start(project, "reused", {}))
            pids.append(run["result"])
        assert pids[0] == pids[1] == pids[2] != pids[3]  # three jobs per child

        run = await wait_for_run(project, await start(project, "here", {}))
        assert run["result"] == os.getpid()

        error = await failure_of(project, await start(project, "spin", {}))
        assert "CPU time limit exceeded" in error["message"], error

        runs = [await start(project, "single", {}) for _ in range(3)]
        windows = sorted([(await wait_for_run(project, r))["result"] for r in runs])
    for (_, first_end), (second_start, _) in itertools.pairwise(windows):
        assert second_start >= first_end - 0.01  # one at a time


async def test_a_crashed_attempt_is_retried_like_any_failure(
    tmp_path: Path, database_url: str
) -> None:
    body = """
    if ctx.attempt == 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    return ctx.attempt
    """
    write_functions(tmp_path, {"flaky.py": python_step("flaky", body, attempts=2, backoff=0.1)})
    async with serving(tmp_path, database_url) as (project, _host):
        run_id = await start(project, "flaky", {})
        run = await wait_for_run(project, run_id)
        async with project.database.connection() as conn:
            events = await events_of_run(conn, run_id)
    assert run["status"] == "completed" and run["result"] == 2
    retry = next(e for e in events if e.type == "step.retry")
    assert "SIGSEGV" in retry.data["error"]["message"]


async def test_state_delete_tells_whether_the_key_was_there(
    tmp_path: Path, database_url: str
) -> None:
    body = """
    await ctx.state.set("k", 1)
    return [await ctx.state.delete("k"), await ctx.state.delete("k")]
    """
    write_functions(
        tmp_path,
        {
            "py_delete.py": python_step("py_delete", body),
            "node_delete.js": node_step(
                "node_delete",
                "await ctx.state.set('k', 1)\n"
                "return [await ctx.state.delete('k'), await ctx.state.delete('k')]",
            ),
        },
    )
    async with serving(tmp_path, database_url) as (project, _host):
        for flow in ("py_delete", "node_delete"):
            run = await wait_for_run(project, await start(project, flow, {}))
            assert run["result"] == [True, False], (flow, run)
