"""`flowhost runs logs RUN --follow` against a real `flowhost host`: the lines of a running
run arrive while it runs, and the command exits when the run ends (its status as exit code)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg

from tests.support.cli import flowhost, start_flowhost
from tests.support.engine import write_functions
from tests.support.hosts import HostProcess

STAGES = """
import asyncio, os, time
from flowhost_worker import step

@step(flow="stages", name="one", entry=True, emits=["two"])
async def one(data, ctx):
    ctx.logger.info("stage one", n=1)
    await ctx.state.set("release", data["release"])
    await asyncio.sleep(0.2)
    await ctx.emit("two", {})
    return 1

@step(flow="stages", name="two", subscribes=["two"], emits=["three"], timeout=120)
async def two(events, ctx):
    ctx.logger.warning("stage two")
    # Holds the run until the test has seen stage one's log through `runs logs --follow` (the
    # file it then writes), however slow the machine is.
    release = await ctx.state.get("release")
    deadline = time.monotonic() + 90
    while not os.path.exists(release) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await ctx.emit("three", {})
    return 2

@step(flow="stages", name="three", subscribes=["three"])
async def three(events, ctx):
    ctx.logger.info("stage three")
    return 3

@step(flow="broken", name="only", entry=True, attempts=1)
async def only(data, ctx):
    ctx.logger.error("about to fail")
    raise ValueError("broken on purpose")
"""


def run_status(database_url: str, run_id: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status FROM flowhost.runs WHERE id = %s", [uuid.UUID(run_id)]
        ).fetchone()
    assert row is not None
    return str(row[0])


def start_run(project: Path, database_url: str, flow: str, data: str = "{}") -> str:
    started = flowhost(
        "run", flow, "--input", data, "--json", project=project, database_url=database_url
    )
    assert started.returncode == 0, started.stderr + started.stdout
    return str(json.loads(started.stdout)["id"])


def test_runs_logs_follow_shows_a_running_run_live_and_exits_at_its_end(
    tmp_path: Path, database_url: str
) -> None:
    project = write_functions(tmp_path, {"stages.py": STAGES})
    host = HostProcess("a", project, database_url)
    host.start()
    try:
        host.wait_ready(60)
        release = tmp_path / "release"
        run_id = start_run(project, database_url, "stages", json.dumps({"release": str(release)}))
        follower = start_flowhost(
            "runs", "logs", run_id[:13], "--follow", project=project, database_url=database_url
        )
        lines: list[str] = []
        status_at_first_log = None
        with follower:
            assert follower.stdout is not None
            for line in follower.stdout:
                lines.append(line)
                if "stage one" in line and status_at_first_log is None:
                    status_at_first_log = run_status(database_url, run_id)
                    release.touch()  # the run goes on only now
            code = follower.wait(timeout=60)
        ended = run_status(database_url, run_id)

        # Again, once over: everything at once, and as JSON Lines.
        again = flowhost("runs", "logs", run_id, project=project, database_url=database_url)
        as_json = flowhost(
            "runs", "logs", run_id, "--json", project=project, database_url=database_url
        )
        broken = start_run(project, database_url, "broken")
        failing = flowhost(
            "runs", "logs", broken, "--follow", project=project, database_url=database_url
        )
    finally:
        host.stop()
    text = "".join(lines)
    assert code == 0, text
    assert ended == "completed"
    # Stage one's log was printed while the run was still running (stage two waits for the
    # test to have seen it): live.
    assert status_at_first_log == "running", text
    order = ["flow started", "one#1", "stage one", "stage two", "stage three", "flow completed"]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions), text
    assert "INFO    stage one n=1" in text and "WARNING stage two" in text
    assert "\x1b[" not in text  # piped: plain
    assert again.returncode == 0 and again.stdout == text.replace("\r", ""), again.stdout
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert records[0]["type"] == "flow.started" and records[-1]["type"] == "flow.completed"
    assert {"id", "run_id", "flow", "type", "step", "attempt", "ts", "data"} <= set(records[1])
    assert [r["data"]["message"] for r in records if r["type"] == "log"] == [
        "stage one",
        "stage two",
        "stage three",
    ]
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "about to fail" in failing.stdout and "flow failed" in failing.stdout


def test_runs_logs_of_an_unknown_run_is_exit_3(tmp_path: Path, database_url: str) -> None:
    project = write_functions(tmp_path, {"stages.py": STAGES})
    result = flowhost("runs", "logs", str(uuid.uuid4()), project=project, database_url=database_url)
    assert result.returncode == 3 and "no run" in result.stderr
