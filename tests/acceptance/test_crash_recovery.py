"""Hosts killed with SIGKILL lose nothing: the run completes, no step result is duplicated."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import psycopg

from tests.support.cli import flowhost, read_until, start_flowhost

HEARTBEAT_TIMEOUT = "2"


def events(database_url: str, run_id: str) -> list[tuple[str, str | None, int | None]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT type, step, attempt FROM flowhost.events WHERE run_id = %s ORDER BY id",
            (uuid.UUID(run_id),),
        ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def wait_for(predicate: object, timeout: float, what: str) -> None:
    """Poll the database until `predicate()` holds, bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_host_mid_run_then_restarted_completes_the_run_once(
    orders_project: Path, database_url: str
) -> None:
    seen: list[str] = []
    # The gateway is slow in the first host, so the kill lands while `charge` runs.
    with start_flowhost(
        "host",
        project=orders_project,
        database_url=database_url,
        FLOWHOST_HEARTBEAT_TIMEOUT=HEARTBEAT_TIMEOUT,
        ORDERS_GATEWAY_LATENCY_MS="60000",
    ) as first:
        try:
            read_until(first, "host ready", seen)
            started = flowhost(
                "run",
                "orders",
                "--input",
                "@order.json",
                "--json",
                project=orders_project,
                database_url=database_url,
            )
            assert started.returncode == 0, started.stderr
            run_id = json.loads(started.stdout)["id"]
            assert json.loads(started.stdout)["status"] == "running"  # a live host took it
            wait_for(
                lambda: (
                    ("step.started", "charge", 1) in events(database_url, run_id)
                    and ("step.completed", "reserve", 2) in events(database_url, run_id)
                ),
                30,
                "charge to start and reserve to finish",
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
    before = events(database_url, run_id)
    assert ("step.completed", "charge", 1) not in before

    with start_flowhost(
        "host",
        project=orders_project,
        database_url=database_url,
        FLOWHOST_HEARTBEAT_TIMEOUT=HEARTBEAT_TIMEOUT,
    ) as second:
        try:
            read_until(second, "host ready", seen)
            wait_for(
                lambda: ("flow.completed", None, None) in events(database_url, run_id),
                60,
                "the run to complete on the second host",
            )
        finally:
            second.send_signal(signal.SIGINT)
            assert second.wait(timeout=30) == 0

    after = events(database_url, run_id)
    completed = [step for kind, step, _ in after if kind == "step.completed"]
    assert sorted(completed) == ["charge", "receipt", "reserve", "ship", "validate"]  # once each
    # charge was started twice (once per host) with the same attempt number: not a failure.
    assert [a for kind, step, a in after if kind == "step.started" and step == "charge"] == [1, 1]
    shown = flowhost(
        "runs", "show", run_id, "--json", project=orders_project, database_url=database_url
    )
    summary = json.loads(shown.stdout)
    assert summary["status"] == "completed"
    assert {s["name"]: s["status"] for s in summary["steps"]} == dict.fromkeys(
        ["validate", "charge", "reserve", "ship", "receipt"], "completed"
    )
    assert summary["state"]["shipment"]["charge_id"] == summary["state"]["charge"]["id"]
