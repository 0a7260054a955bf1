"""`flowhost serve --workers N`: N processes on one port, kept running by their supervisor,
stopped with it, and never left behind when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.api import TOKEN
from tests.support.cli import read_until, start_flowhost
from tests.support.engine import write_functions

GREET = """
from flowhost_worker import step

@step(flow="greet", entry=True)
async def hello(data, ctx):
    return {"hello": data.get("name")}
"""


def children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(child) for child in text.split()}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


def all_healthy(url: str, requests: int = 20) -> None:
    """`requests` answers of 200, each on a connection of its own (spread over the workers)."""
    for _ in range(requests):
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200


@contextmanager
def serving(
    tmp_path: Path, database_url: str, workers: int
) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    project = write_functions(tmp_path, {"greet.py": GREET})
    seen: list[str] = []
    with start_flowhost(
        "serve",
        "--port",
        "0",
        "--workers",
        str(workers),
        project=project,
        database_url=database_url,
        FLOWHOST_API_TOKEN=TOKEN,
    ) as server:
        try:
            line = read_until(server, "http ready:", seen)
            assert f"{workers} worker processes" in line
            yield server, line.split("http ready:")[1].split()[0], seen
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=30)


def test_workers_serve_one_port_and_a_dead_worker_is_started_again(
    tmp_path: Path, database_url: str
) -> None:
    with serving(tmp_path, database_url, workers=2) as (server, url, seen):
        workers = children(server.pid)
        assert len(workers) == 2
        all_healthy(url)
        first, second = sorted(workers)
        os.kill(first, signal.SIGKILL)
        # The other worker answers meanwhile; the supervisor starts a third.
        all_healthy(url)
        wait_for(lambda: len(children(server.pid) - {first}) == 2, "a worker started again")
        replacement = (children(server.pid) - workers).pop()
        os.kill(second, signal.SIGKILL)
        wait_for(lambda: not alive(second), "the second worker gone")
        # Only the replacement serves now, once it listens on the same port.
        wait_for(lambda: answers(url), "the replacement answers")
        all_healthy(url)
        server.send_signal(signal.SIGINT)
        code = server.wait(timeout=60)
        rest = server.stdout.read() if server.stdout else ""
        assert code == 0, "".join(seen) + rest
        assert "stopped" in rest
        assert "exited with status -9; starting it again" in rest
        assert not alive(replacement)
        assert not children(server.pid)


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path, database_url: str) -> None:
    with serving(tmp_path, database_url, workers=2) as (server, url, _):
        workers = children(server.pid)
        assert len(workers) == 2
        all_healthy(url, requests=4)
        server.kill()
        server.wait(timeout=10)
        wait_for(lambda: not any(alive(pid) for pid in workers), "orphaned workers stopped")
