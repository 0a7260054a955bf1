"""`flowhost flows list|show` as a user runs them: the project's flows with what the database
knows (live hosts, triggers, runs), the step graph drawn as text, colour only when asked for
or on a terminal, and --json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flowhost.cli.exit_codes import NOT_FOUND
from flowhost.db.database import Database
from flowhost.triggers.declarations import TriggerSpec
from flowhost.triggers.service import create_trigger
from tests.support.cli import flowhost
from tests.support.hosts import HostProcess


def copy_of(project: Path, into: Path) -> Path:
    """A copy of an example (its own state folder: no embedded server is shared)."""
    return Path(shutil.copytree(project, into / project.name, ignore=shutil.ignore_patterns(
        ".flowhost", "node_modules", ".venv")))  # fmt: skip


async def test_flows_list_shows_steps_runtimes_triggers_hosts_and_runs(
    tmp_path: Path, orders_project: Path, database_url: str, database: Database
) -> None:
    project = copy_of(orders_project, tmp_path)
    async with database.transaction() as conn:
        await create_trigger(
            conn, TriggerSpec("order.placed", "event"), subscribe={"orders": "auto"}
        )
    ran = flowhost(
        "run", "orders", "--input", "@order.json", project=project, database_url=database_url
    )
    assert ran.returncode == 0, ran.stderr

    listed = flowhost("flows", "list", "--json", project=project, database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert found["problems"] == []
    assert [flow["name"] for flow in found["flows"]] == ["orders", "refunds"]
    orders = found["flows"][0]
    assert orders["name"] == "orders" and orders["entry"] == "validate"
    assert orders["step_count"] == 5 and orders["runtimes"] == ["node", "python"]
    assert orders["triggers"] == [{"name": "order.placed", "type": "event", "mode": "auto"}]
    assert orders["hosts"] == 0  # `flowhost run` ran its own host, gone now
    assert orders["runs"]["total"] == 1 and orders["runs"]["completed"] == 1

    host = HostProcess("a", project, database_url)
    host.start()
    try:
        host.wait_ready(60)
        served = flowhost("flows", "list", project=project, database_url=database_url)
    finally:
        host.stop()
    assert served.returncode == 0, served.stderr
    header, row, refunds = served.stdout.splitlines()
    assert refunds.split()[0] == "refunds"
    assert header.split() == [
        "FLOW", "STEPS", "RUNTIMES", "TRIGGERS", "HOSTS", "RUNS", "LIVE", "DONE", "FAILED"
    ]  # fmt: skip
    assert row.split() == [
        "orders",
        "5",
        "node,",
        "python",
        "order.placed",
        "1",
        "1",
        "0",
        "1",
        "0",
    ]
    assert "\x1b[" not in served.stdout  # piped: plain

    coloured = flowhost("--color", "flows", "list", project=project, database_url=database_url)
    assert "\x1b[33m0\x1b[0m" in coloured.stdout  # no live host: yellow
    no_colour = flowhost(
        "--color", "flows", "list", project=project, database_url=database_url, NO_COLOR="1"
    )
    assert "\x1b[" in no_colour.stdout  # the flag is explicit: it wins over NO_COLOR
    refused = flowhost("flows", "list", project=project, database_url=database_url, NO_COLOR="1")
    assert "\x1b[" not in refused.stdout


def test_flows_show_draws_the_graph(
    tmp_path: Path, orders_project: Path, database_url: str
) -> None:
    project = copy_of(orders_project, tmp_path)

    def show(*args: str, **env: str) -> str:
        result = flowhost("flows", "show", "orders", *args, project=project,
                          database_url=database_url, **env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    drawn = show(PYTHONIOENCODING="utf-8")
    lines = drawn.splitlines()
    assert lines[0].startswith("flow orders  definition ") and lines[0].endswith("5 steps")
    assert lines[1] == "hosts serving it: 0  runs: 0 (0 completed, 0 failed, 0 live)"
    assert lines[2] == "triggers: none"
    assert "│ validate  (entry) │" in drawn and "▼" in drawn
    assert "on order.charged + order.reserved" in drawn  # ship waits for both
    assert "node, 2 attempts, timeout 10s" in drawn  # receipt runs in Node
    box_tops = [n for n, line in enumerate(lines) if "┌" in line and "│" not in line]
    assert len(box_tops) == 3  # three layers: validate / charge, reserve / receipt, ship

    plain = show("--ascii")
    assert plain.isascii() and "| validate  (entry) |" in plain and "v" in plain
    assert show(PYTHONIOENCODING="ascii").isascii()  # not a UTF-8 stdout: ASCII by itself
    # Too narrow a terminal for the drawing: the list.
    assert show(COLUMNS="40").splitlines()[4:6] == [" 1  validate  (entry)", "      python"]
    assert show("--layout", "list") == show("--layout", "list", COLUMNS="40")

    detail = json.loads(show("--json"))
    assert detail["layers"] == [["validate"], ["charge", "reserve"], ["receipt", "ship"]]
    assert {"from": "charge", "to": "ship", "events": ["order.charged"]} in detail["edges"]
    steps = {step["name"]: step for step in detail["steps"]}
    assert steps["receipt"]["runtime"] == "node" and steps["ship"]["layer"] == 2
    assert steps["ship"]["subscribes"] == ["order.charged", "order.reserved"]
    assert detail["limits"]["max_runs"] is None and detail["hosts"] == 0

    missing = flowhost("flows", "show", "nope", project=project, database_url=database_url)
    assert missing.returncode == NOT_FOUND
    assert missing.stderr == "flowhost: error: unknown flow 'nope' (flows: orders, refunds)\n"
