"""What every command shares: a status line on a terminal (never in piped output), --json on
the commands that print data, and the second names of command groups."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import threading
from pathlib import Path

from tests.support.cli import FLOWHOST, cli_env, flowhost


def read_all(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other end closed: EIO on Linux
            return
        if not chunk:
            return
        into.append(chunk)


def test_a_status_line_on_a_terminal_and_plain_output_in_a_pipe(
    orders_project: Path, database_url: str
) -> None:
    # stderr is a terminal (a pseudo-terminal), stdout a pipe: the status line goes to the
    # terminal, the events and the result stay plain in the pipe.
    master, slave = pty.openpty()
    seen: list[bytes] = []
    reader = threading.Thread(target=read_all, args=(master, seen), daemon=True)
    reader.start()
    try:
        result = subprocess.run(
            [*FLOWHOST, "-p", str(orders_project), "run", "orders", "--input", "@order.json"],
            env=cli_env(database_url), cwd=orders_project, stdout=subprocess.PIPE,
            stderr=slave, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    terminal = b"".join(seen).decode()
    assert result.returncode == 0, terminal
    assert "\x1b[" not in result.stdout
    run_id = re.fullmatch(r"run ([0-9a-f-]{36}) completed", result.stdout.splitlines()[-1])
    assert run_id is not None, result.stdout
    assert f"run {run_id.group(1)[:8]} " in terminal and " steps · " in terminal
    assert "\r\x1b[2K" in terminal
    assert terminal.endswith("\r\x1b[2K")  # cleared at the end: nothing left behind


def test_json_of_db_and_stats_commands(orders_project: Path, database_url: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return flowhost(*args, project=orders_project, database_url=database_url)

    status = cli("db", "status", "--json")
    assert status.returncode == 0, status.stderr
    migrations = json.loads(status.stdout)
    assert migrations[0]["version"] == 1 and all(m["applied_at"] for m in migrations)
    migrate = cli("db", "migrate", "--json")
    assert migrate.returncode == 0 and json.loads(migrate.stdout) == {"applied": []}
    check = cli("stats", "rebuild", "--check", "--json")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout) == {
        "flows": 0, "steps": 0, "written": False, "differences": []
    }  # fmt: skip


def test_groups_answer_to_both_names(tmp_path: Path, database_url: str) -> None:
    def cli(*args: str) -> str:
        result = flowhost(*args, project=tmp_path, database_url=database_url)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert json.loads(cli("schedules", "list", "--json")) == []
    assert cli("schedule", "list", "--json") == cli("schedules", "list", "--json")
    assert cli("triggers", "list", "--json") == cli("trigger", "list", "--json")
    usage = cli("schedule", "--help").splitlines()[0]
    assert usage == "Usage: flowhost schedules [OPTIONS] COMMAND [ARGS]..."
    listed = cli("--help")
    assert "schedules, schedule" in listed and "trigger, triggers" in listed
    assert "flows " in listed and "worker " in listed and "bench " in listed
