"""`flowhost bench`: the harness of a flowhost checkout, run as `python -m bench` would, and a
clear error where flowhost is installed without its repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from flowhost.cli.exit_codes import USAGE
from tests.conftest import REPO
from tests.support.cli import FLOWHOST, cli_env


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWHOST, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def test_bench_lists_and_runs_scenarios_of_the_checkout(tmp_path: Path, admin_url: str) -> None:
    # Run from elsewhere: the checkout is the one flowhost is imported from.
    env = cli_env(admin_url)
    listed = run("bench", "--list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    names = [scenario["name"] for scenario in json.loads(listed.stdout)]
    assert "engine_noop" in names and "trigger_match" in names

    ran = run(
        "bench", "trigger_match", "--quick", "--repeat", "1", "--json",
        "--results-dir", str(tmp_path / "results"), cwd=tmp_path, env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    rows = json.loads(ran.stdout)
    assert rows and {row["scenario"] for row in rows} == {"trigger_match"}
    assert rows == json.loads((tmp_path / "results" / "latest.json").read_text())
    assert "wrote " in ran.stderr  # progress and where it wrote: stderr

    unknown = run("bench", "nope", cwd=tmp_path, env=env)
    assert unknown.returncode == USAGE and "unknown scenario(s) nope" in unknown.stderr


def test_bench_without_a_checkout_says_what_it_needs(tmp_path: Path) -> None:
    # flowhost as a wheel installs it: the package alone, no bench/ beside it.
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "python" / "flowhost", site / "flowhost",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env = cli_env(None, PYTHONPATH=os.pathsep.join([str(site), str(REPO / "sdk-python" / "src")]))
    result = subprocess.run(
        [sys.executable, "-P", "-m", "flowhost", "bench"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == USAGE, result.stderr
    assert result.stderr.startswith(
        "flowhost: error: flowhost bench needs a flowhost source checkout"
    )
    assert "FLOWHOST_REPO" in result.stderr and result.stdout == ""

    named = subprocess.run(
        [sys.executable, "-P", "-m", "flowhost", "bench", "--list"], cwd=tmp_path,
        env={**env, "FLOWHOST_REPO": str(REPO)}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert named.returncode == 0, named.stderr
    assert "engine_noop" in named.stdout
