"""A host SIGKILLed mid-step leaks no flow-control slot: the step holds its slot until it ends
on another host, and the run waiting behind it then starts."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.acceptance.test_crash_recovery import events, wait_for
from tests.support.cli import flowhost, read_until, start_flowhost
from tests.support.engine import write_functions

SOLO = """
import asyncio
import os

from flowhost_worker import step

# One run at a time, and one attempt of its step at a time, on every host together.
@step(flow="solo", entry=True, max_runs=1, concurrency=1, isolation="inprocess")
async def solo(data, ctx):
    await asyncio.sleep(float(os.environ.get("SOLO_SLEEP", "0")))
    return data
"""


def query(database_url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def status(database_url: str, run_id: str) -> str:
    rows = query(database_url, "SELECT status FROM flowhost.runs WHERE id = %s", uuid.UUID(run_id))
    return str(rows[0]["status"])


def test_a_killed_host_keeps_its_slots_held_until_the_step_ends_elsewhere(
    tmp_path: Path, database_url: str
) -> None:
    project = write_functions(tmp_path, {"solo.py": SOLO})
    seen: list[str] = []
    with start_flowhost(
        "host",
        project=project,
        database_url=database_url,
        FLOWHOST_HEARTBEAT_TIMEOUT="2",
        SOLO_SLEEP="60",
    ) as first:
        try:
            read_until(first, "host ready", seen)
            run_ids, statuses = [], []
            for n in (1, 2):
                started = flowhost(
                    "run",
                    "solo",
                    "--input",
                    json.dumps({"n": n}),
                    "--json",
                    project=project,
                    database_url=database_url,
                )
                assert started.returncode == 0, started.stderr
                run_ids.append(json.loads(started.stdout)["id"])
                statuses.append(json.loads(started.stdout)["status"])
            running, waiting = run_ids
            assert statuses == ["running", "queued"]  # the second waits for the first's slot
            wait_for(
                lambda: ("step.started", "solo", 1) in events(database_url, running),
                30,
                "the first run's step to start",
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()

    # Dead host, live slots: the step still holds its run's slot and its own.
    assert status(database_url, waiting) == "queued"
    held = query(database_url, "SELECT step, key, held FROM flowhost.flow_slots ORDER BY step, key")
    assert held == [{"step": "", "key": "", "held": 1}, {"step": "solo", "key": "", "held": 1}]
    assert [r["run_id"] for r in query(database_url, "SELECT run_id FROM flowhost.flow_holds")] == [
        uuid.UUID(running)
    ] * 2

    with start_flowhost(
        "host", project=project, database_url=database_url, FLOWHOST_HEARTBEAT_TIMEOUT="2"
    ) as second:
        try:
            read_until(second, "host ready", seen)
            wait_for(
                lambda: all(status(database_url, r) == "completed" for r in run_ids),
                60,
                "both runs to complete on the second host",
            )
        finally:
            second.send_signal(signal.SIGINT)
            assert second.wait(timeout=30) == 0

    # The first run's step ran again from its claim; the second started only after it ended.
    assert [a for kind, step, a in events(database_url, running) if kind == "step.started"] == [
        1,
        1,
    ]
    order = query(
        database_url,
        "SELECT r.id, r.finished_at, s.started_at FROM flowhost.runs r "
        "JOIN flowhost.steps s ON s.run_id = r.id ORDER BY s.started_at",
    )
    assert [str(r["id"]) for r in order] == [running, waiting]
    assert order[1]["started_at"] >= order[0]["finished_at"]
    assert [
        r for r in query(database_url, "SELECT held FROM flowhost.flow_slots") if r["held"]
    ] == []
    assert query(database_url, "SELECT * FROM flowhost.flow_holds") == []
    assert query(database_url, "SELECT * FROM flowhost.flow_waiters") == []
