"""`flowhost run` and friends as a user runs them: output, JSON, errors and exit codes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import psycopg

from tests.support.cli import flowhost


def count_runs(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM flowhost.runs").fetchone()
        jobs = conn.execute("SELECT count(*) FROM pgqueuer").fetchone()
    assert row is not None and jobs is not None
    return int(row[0]) + int(jobs[0])


def test_run_prints_events_and_ends_with_completed(orders_project: Path, database_url: str) -> None:
    result = flowhost(
        "run", "orders", "--input", "@order.json", project=orders_project, database_url=database_url
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"run [0-9a-f-]{36} completed", lines[-1])
    assert any("step.retry" in line and "reserve" in line for line in lines)
    assert lines[-2].startswith("result: ") and "TRK-A-1001-2" in lines[-2]


def test_run_json_is_one_object(orders_project: Path, database_url: str) -> None:
    result = flowhost(
        "run",
        "orders",
        "--input",
        (orders_project / "order.json").read_text(),
        "--json",
        project=orders_project,
        database_url=database_url,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert set(summary) == {"id", "flow", "status", "result", "error", "steps"}
    assert summary["status"] == "completed" and summary["error"] is None
    steps = {s["name"]: s for s in summary["steps"]}
    assert set(steps) == {"validate", "charge", "reserve", "ship", "receipt"}
    assert steps["reserve"]["attempts"] == 2
    assert all(set(s) == {"name", "status", "attempts", "result"} for s in summary["steps"])

    listed = flowhost("runs", "list", "--json", project=orders_project, database_url=database_url)
    assert [r["id"] for r in json.loads(listed.stdout)] == [summary["id"]]
    shown = flowhost(
        "runs", "show", summary["id"][:8], project=orders_project, database_url=database_url
    )
    assert shown.returncode == 0 and "flow.completed" in shown.stdout


def test_a_failed_run_exits_1(orders_project: Path, database_url: str) -> None:
    result = flowhost(
        "run",
        "orders",
        "--input",
        '{"id": "X"}',
        "--json",
        project=orders_project,
        database_url=database_url,
    )
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed"
    assert summary["error"]["message"] == "order is missing customer, items"


def test_unknown_flow_is_a_one_line_error_and_changes_nothing(
    orders_project: Path, database_url: str
) -> None:
    result = flowhost("run", "nope", project=orders_project, database_url=database_url)
    assert result.returncode == 3
    assert result.stderr.strip() == "flowhost: error: unknown flow 'nope' (flows: orders, refunds)"
    assert count_runs(database_url) == 0


def test_malformed_input_is_a_one_line_error_and_changes_nothing(
    orders_project: Path, database_url: str
) -> None:
    result = flowhost(
        "run", "orders", "--input", '{"id": ', project=orders_project, database_url=database_url
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("flowhost: error: --input is not valid JSON:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert count_runs(database_url) == 0


def test_an_unreachable_database_is_a_one_line_error(orders_project: Path) -> None:
    result = flowhost(
        "run",
        "orders",
        project=orders_project,
        database_url="postgresql://flowhost:secret@127.0.0.1:9/none",
    )
    assert result.returncode == 4
    message = result.stderr.strip()
    assert message.startswith(
        "flowhost: error: cannot reach the database at postgresql://flowhost:***@127.0.0.1:9/none"
    )
    assert "secret" not in message and len(message.splitlines()) == 1


def test_broken_files_are_reported_and_other_flows_still_run(
    tmp_path: Path, orders_project: Path, database_url: str
) -> None:
    shutil.copytree(orders_project, tmp_path / "orders", ignore=shutil.ignore_patterns(".flowhost"))
    project = tmp_path / "orders"
    (project / "functions" / "broken.py").write_text("import os\n\ndef oops(:\n    pass\n")
    (project / "functions" / "twice.py").write_text(
        "from flowhost_worker import step\n\n"
        "@step(flow='double', entry=True)\nasync def one(data, ctx):\n    return 1\n\n"
        "@step(flow='double', entry=True)\nasync def two(data, ctx):\n    return 2\n"
    )
    (project / "functions" / "lonely.py").write_text(
        "from flowhost_worker import step\n\n"
        "@step(flow='lonely', entry=True)\nasync def start(data, ctx):\n    return 1\n\n"
        "@step(flow='lonely', subscribes=['never.emitted'])\nasync def wait(data, ctx):\n"
        "    return 2\n"
    )
    result = flowhost(
        "run", "orders", "--input", "@order.json", project=project, database_url=database_url
    )
    assert result.returncode == 0, result.stderr
    broken = str(project / "functions" / "broken.py")
    assert f"{broken}:3: SyntaxError" in result.stderr
    assert "flow 'double' has two entry steps" in result.stderr
    assert f"{project / 'functions' / 'lonely.py'}:7:" in result.stderr
    assert "subscribes to 'never.emitted', which no step of the flow emits" in result.stderr

    refused = flowhost("run", "double", project=project, database_url=database_url)
    assert refused.returncode == 3
    assert "flow 'double' is invalid" in refused.stderr
    assert "twice.py:7: flow 'double' has two entry steps" in refused.stderr


def test_db_commands(orders_project: Path, empty_database_url: str) -> None:
    status = flowhost("db", "status", project=orders_project, database_url=empty_database_url)
    assert status.returncode == 1 and "pending" in status.stdout
    migrate = flowhost("db", "migrate", project=orders_project, database_url=empty_database_url)
    assert migrate.returncode == 0
    assert "applied 0001_initial" in migrate.stdout
    again = flowhost("db", "status", project=orders_project, database_url=empty_database_url)
    assert again.returncode == 0 and "pending" not in again.stdout
    sql = flowhost("db", "sql", project=orders_project, database_url=None)
    assert "CREATE TABLE flowhost.runs" in sql.stdout and "pgqueuer" in sql.stdout
