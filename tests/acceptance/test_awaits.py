"""Awaits across real `flowhost host` processes: an approval webhook registered by one host and
resolved through another's URL, refusals that change nothing, and a time await that survives a
restart of every host and of Postgres."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.support.cli import flowhost, read_until, start_flowhost
from tests.support.engine import write_functions

APPROVAL = """
from flowhost_worker import Await, step

SCHEMA = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "by": {"type": "string"}},
    "required": ["approved"],
}


async def mail_approval(data, ctx):
    # Where a real hook would send the URL by mail.
    await ctx.state.set("mailed", data["await"]["url"])


@step(flow="approval", name="request", entry=True, emits=["requested"])
async def request(order, ctx):
    await ctx.emit("requested", order)
    return {"requested": order["id"]}


@step(
    flow="approval",
    name="decide",
    subscribes=["requested"],
    await_before=Await.webhook(schema=SCHEMA, timeout=600, on_register=mail_approval),
)
async def decide(events, ctx):
    return {"order": events["requested"]["id"], "decision": ctx.awaited.data}


@step(flow="hurry", name="ask", entry=True, await_before=Await.webhook(timeout=1))
async def ask(data, ctx):
    return ctx.awaited.data
"""

NAP = """
from flowhost_worker import Await, step


@step(flow="nap", name="begin", entry=True, emits=["begun"])
async def begin(data, ctx):
    await ctx.emit("begun", data)
    return "begun"


@step(flow="nap", name="wake", subscribes=["begun"], await_before=Await.time(2))
async def wake(events, ctx):
    return {"woke": events["begun"], "awaited": ctx.awaited.type}
"""


def query(database_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def host(
    project: Path, database_url: str | None, *args: str
) -> Iterator[tuple[str | None, list[str]]]:
    """A `flowhost host` process until the block ends (then SIGINT, and it must exit 0);
    yields its HTTP URL (with --http) and its output so far."""
    seen: list[str] = []
    # One warm child per host: two hosts and the tests share two cores.
    with start_flowhost(
        "host", *args, project=project, database_url=database_url, FLOWHOST_WARM_PYTHON="1"
    ) as process:
        try:
            url = None
            if "--http" in args:
                line = read_until(process, "http ready:", seen)
                url = line.split("http ready:")[1].split()[0]
            read_until(process, "host ready", seen)
            yield url, seen
        finally:
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            rest = process.stdout.read() if process.stdout else ""
            assert code == 0, "".join(seen) + rest


def start_run(project: Path, database_url: str | None, flow: str, data: Any) -> str:
    started = flowhost(
        "run",
        flow,
        "--input",
        json.dumps(data),
        "--json",
        project=project,
        database_url=database_url,
    )
    assert started.returncode == 0, started.stderr
    return str(json.loads(started.stdout)["id"])


def snapshot(database_url: str, run_id: str) -> tuple[Any, ...]:
    run = uuid.UUID(run_id)
    return (
        query(
            database_url,
            "SELECT id, type, data FROM flowhost.events WHERE run_id = %s ORDER BY id",
            run,
        ),
        query(database_url, "SELECT * FROM flowhost.awaits WHERE run_id = %s", run),
        query(
            database_url,
            "SELECT name, status, awaited FROM flowhost.steps WHERE run_id = %s ORDER BY name",
            run,
        ),
        query(database_url, "SELECT status, version FROM flowhost.runs WHERE id = %s", run),
    )


def test_approval_registered_by_one_host_resolves_through_another(
    tmp_path: Path, database_url: str
) -> None:
    project = write_functions(tmp_path, {"approval.py": APPROVAL})
    with host(project, database_url, "--http", "127.0.0.1:0") as (url_a, _):
        run_id = start_run(project, database_url, "approval", {"id": "PO-7"})
        mailed = wait_for(
            lambda: query(
                database_url,
                "SELECT value FROM flowhost.state WHERE run_id = %s AND key = 'mailed'",
                uuid.UUID(run_id),
            ),
            30,
            "the register hook to mail the URL",
        )[0]["value"]
        # Host A registered the await: its hook got A's URL.
        assert url_a is not None and mailed.startswith(url_a + "/hooks/await/")
        with host(project, database_url, "--http", "127.0.0.1:0") as (url_b, _):
            assert url_b is not None and url_b != url_a
            # An operator finds the URL with the CLI (behind B's public URL here).
            listed = flowhost(
                "runs",
                "awaits",
                run_id,
                "--json",
                project=project,
                database_url=database_url,
                FLOWHOST_PUBLIC_URL=url_b,
            )
            assert listed.returncode == 0, listed.stderr
            [row] = json.loads(listed.stdout)
            assert (row["step"], row["type"], row["status"]) == ("decide", "webhook", "waiting")
            url = row["url"]
            assert url.startswith(url_b) and url.removeprefix(url_b) == mailed.removeprefix(url_a)
            token = url.rsplit("/", 1)[1]
            table = flowhost(
                "runs", "awaits", run_id[:8], project=project, database_url=database_url
            ).stdout
            assert (
                "decide" in table and "waiting" in table and f"POST /hooks/await/{token}" in table
            )

            before = snapshot(database_url, run_id)
            with httpx.Client(timeout=30) as client:
                wrong_method = client.put(url, json={"approved": True})
                invalid = client.post(url, json={"approved": "sure"})
                not_json = client.post(url, content=b"approved=true")
            assert snapshot(database_url, run_id) == before
            with httpx.Client(timeout=30) as client:
                resolved = client.post(url, json={"approved": True, "by": "ana"})
            assert resolved.status_code == 202, resolved.text
            wait_for(
                lambda: query(
                    database_url,
                    "SELECT 1 FROM flowhost.runs WHERE id = %s AND status = 'completed'",
                    uuid.UUID(run_id),
                ),
                30,
                "the run to complete",
            )
            after = snapshot(database_url, run_id)
            with httpx.Client(timeout=30) as client:
                again = client.post(url, json={"approved": False})
            assert snapshot(database_url, run_id) == after

            hurried = start_run(project, database_url, "hurry", {})
            wait_for(
                lambda: query(
                    database_url,
                    "SELECT 1 FROM flowhost.runs WHERE id = %s AND status = 'failed'",
                    uuid.UUID(hurried),
                ),
                30,
                "the hurried approval to time out",
            )
            [late_row] = query(
                database_url,
                "SELECT token FROM flowhost.awaits WHERE run_id = %s",
                uuid.UUID(hurried),
            )
            timed_out = snapshot(database_url, hurried)
            with httpx.Client(timeout=30) as client:
                late = client.post(f"{url_b}/hooks/await/{late_row['token']}", json={})
            assert snapshot(database_url, hurried) == timed_out

    answers = {
        "405": wrong_method,
        "422": invalid,
        "422 (not JSON)": not_json,
        "409": again,
        "410": late,
    }
    for expected, answer in answers.items():
        assert answer.status_code == int(expected[:3]), (expected, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["status"] == answer.status_code and problem["title"]
        assert token not in answer.text
    assert wrong_method.headers["allow"] == "POST"
    assert invalid.json()["errors"][0]["pointer"] == "/approved"
    [decide] = [s for s in after[2] if s["name"] == "decide"]
    assert decide["awaited"] == {"type": "webhook", "data": {"approved": True, "by": "ana"}}
    shown = json.loads(
        flowhost(
            "runs", "show", run_id, "--json", project=project, database_url=database_url
        ).stdout
    )
    assert shown["result"] == {"order": "PO-7", "decision": {"approved": True, "by": "ana"}}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder outside pytest's (0700, per user) tree: the embedded server, run as its own
    user when flowhost runs as root, must reach it; short, for the server's socket."""
    path = Path(tempfile.mkdtemp(prefix="fh-awaits-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def embedded_url(pg: Path) -> str:
    """The running embedded server's URL, from its postmaster.pid (port, socket folder)."""
    lines = (pg / "postmaster.pid").read_text().splitlines()
    return f"host={lines[4]} port={lines[3]} user=postgres dbname=flowhost"


def test_a_time_await_survives_a_restart_of_every_host_and_of_postgres(short_dir: Path) -> None:
    project = write_functions(short_dir, {"nap.py": NAP})
    pg = project / ".flowhost" / "pg"
    seen: list[str] = []
    first = start_flowhost("host", project=project, database_url=None, FLOWHOST_WARM_PYTHON="1")
    second = None
    try:
        read_until(first, "host ready", seen)
        second = start_flowhost(
            "host", project=project, database_url=None, FLOWHOST_WARM_PYTHON="1"
        )
        read_until(second, "host ready", seen)
        run_id = start_run(project, None, "nap", {"n": 1})
        url = embedded_url(pg)
        # Watched straight in the database: the hosts stop well within the await's 2 s.
        [registered] = wait_for(
            lambda: query(
                url,
                "SELECT status, resolve_at FROM flowhost.awaits WHERE run_id = %s",
                uuid.UUID(run_id),
            ),
            90,
            "the time await to be registered",
        )
    finally:
        for process in (first, second):
            if process is not None:
                process.send_signal(signal.SIGINT)
        for process in (first, second):
            if process is not None:
                with process:
                    assert process.wait(timeout=60) == 0, "".join(seen)
    assert registered["status"] == "waiting"
    resolve_at = registered["resolve_at"]
    # Every host stopped, and with the last one the embedded Postgres.
    assert not (pg / "postmaster.pid").exists()
    wait_until = resolve_at.timestamp() + 1.0
    while time.time() < wait_until:  # the await falls due while nothing runs
        time.sleep(0.1)
    restarted_at = datetime.now(UTC)
    with host(project, None):

        def finished() -> Any:
            result = flowhost("runs", "show", run_id, "--json", project=project, database_url=None)
            summary = json.loads(result.stdout)
            return summary if summary["status"] in ("completed", "failed") else None

        summary = wait_for(finished, 60, "the run to complete after the restart")
        [row] = json.loads(
            flowhost("runs", "awaits", run_id, "--json", project=project, database_url=None).stdout
        )
    assert summary["status"] == "completed", summary
    assert summary["result"] == {"woke": {"n": 1}, "awaited": "time"}
    assert row["status"] == "resolved"
    # It resolved once a host was back, not before every host and Postgres stopped.
    assert datetime.fromisoformat(row["resolved_at"]) > max(resolve_at, restarted_at)
