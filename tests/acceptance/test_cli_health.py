"""`flowhost stats`, `runs state`, `runs parked` and `runs migrate` as a user runs them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg

from tests.support.cli import flowhost


def sql(database_url: str, statement: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def test_state_as_of_an_event_and_the_statistics(orders_project: Path, database_url: str) -> None:
    def cli(*args: str) -> tuple[int, str, str]:
        result = flowhost(*args, project=orders_project, database_url=database_url)
        return result.returncode, result.stdout, result.stderr

    code, out, err = cli("run", "orders", "--input", "@order.json", "--json")
    assert code == 0, err
    run_id = json.loads(out)["id"]

    code, out, err = cli("runs", "state", run_id[:8], "--json")
    assert code == 0, err
    state = json.loads(out)
    assert {"order", "charge", "shipment"} <= set(state)
    [(first_set,)] = sql(
        database_url,
        "SELECT min(id) FROM flowhost.events WHERE run_id = %s AND type = 'state.set'",
        uuid.UUID(run_id),
    )
    code, out, err = cli("runs", "state", run_id, "--at", str(first_set), "--json")
    assert code == 0, err
    assert json.loads(out) == {"order": state["order"]}
    code, out, _ = cli("runs", "state", run_id, "--at", str(first_set))
    assert out.startswith("order = {")
    code, out, _ = cli("runs", "show", run_id)
    assert f"{first_set}  " in out  # event ids, for --at

    code, out, err = cli("stats")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["FLOW", "TOTAL", "QUEUED"]
    [row] = [row for row in rows if row.split()[0] == "orders"]
    assert row.split()[:6] == ["orders", "1", "0", "0", "0", "1"]
    code, out, err = cli("stats", "orders", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert found["durations"]["runs"] == 1
    assert {s["step"]: s["retried"] for s in found["steps"]}["reserve"] == 1
    code, out, _ = cli("stats", "--json", "orders")
    assert json.loads(out)["flows"][0]["flow"] == "orders"
    code, out, _ = cli("stats", "orders")
    assert "p50" in out and "STEP" in out
    code, _, err = cli("stats", "nothing")
    assert code == 2 and "no statistics for flow 'nothing'" in err

    code, out, _ = cli("stats", "rebuild", "--check")
    assert code == 0 and "agree with the events" in out
    sql(database_url, "UPDATE flowhost.flow_stats SET completed = 7")
    code, out, _ = cli("stats", "rebuild", "--check")
    assert code == 1
    assert "differs: flow_stats orders completed: kept 7, events say 1" in out
    code, out, _ = cli("stats", "rebuild")
    assert code == 0 and "corrected: flow_stats orders completed" in out
    code, out, _ = cli("stats", "rebuild", "--check")
    assert code == 0


def test_parked_runs_are_listed_and_migrating_needs_a_live_host(
    orders_project: Path, database_url: str
) -> None:
    def cli(*args: str) -> tuple[int, str, str]:
        result = flowhost(*args, project=orders_project, database_url=database_url)
        return result.returncode, result.stdout, result.stderr

    run_id = uuid.uuid4()
    sql(
        database_url,
        "INSERT INTO flowhost.runs (id, flow, status, input, definition_hash) "
        "VALUES (%s, 'orders', 'running', '{}', 'old')",
        run_id,
    )
    code, out, err = cli("runs", "parked", "--json")
    assert code == 0, err
    [parked] = json.loads(out)
    assert (parked["id"], parked["flow"], parked["definition_hash"]) == (
        str(run_id),
        "orders",
        "old",
    )
    code, out, _ = cli("runs", "parked")
    assert str(run_id) in out and "DEFINITION" in out

    code, _, err = cli("runs", "migrate", str(run_id))
    assert code == 2 and "no live host serves flow 'orders'" in err
    code, _, err = cli("runs", "migrate")
    assert code == 2 and "give a RUN or --flow FLOW" in err

    code, out, _ = cli("runs", "list", "--status", "stalled", "--json")
    assert code == 0 and json.loads(out) == []
