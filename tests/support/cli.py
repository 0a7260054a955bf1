"""Run the real `flowhost` command in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

FLOWHOST = [sys.executable, "-m", "flowhost"]


def cli_env(database_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FLOWHOST_") and k != "DATABASE_URL"
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def flowhost(
    *args: str, project: Path, database_url: str | None, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWHOST, "-p", str(project), *args],
        env=cli_env(database_url, **env),
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_flowhost(
    *args: str, project: Path, database_url: str | None, **env: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*FLOWHOST, "-p", str(project), *args],
        env=cli_env(database_url, PYTHONUNBUFFERED="1", **env),
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(process: subprocess.Popen[str], marker: str, seen: list[str]) -> str:
    """Read the child's output lines until one contains `marker` (the child's own readiness
    message, not a sleep); fails if the child exits first."""
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            return line
    raise AssertionError(f"exited ({process.wait()}) before printing {marker!r}:\n{''.join(seen)}")
