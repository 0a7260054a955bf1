"""`flowhost host` processes for tests that run several hosts and kill some of them.

Each host's output is read by a thread of its own for as long as the process lives: a host
whose pipe nobody reads blocks on its next log line once the pipe is full.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.cli import start_flowhost

READY = "host ready"


class HostProcess:
    """One `flowhost host` at a time under a stable name; `kill` and `start` replace it."""

    def __init__(self, name: str, project: Path, database_url: str, **env: str) -> None:
        self.name = name
        self._project = project
        self._database_url = database_url
        self._env = env
        self._process: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        # Every line every incarnation printed, prefixed with its pid (for failure reports).
        self.output: list[str] = []
        # Pids of the incarnations killed with SIGKILL.
        self.killed_pids: list[int] = []

    @property
    def pid(self) -> int:
        assert self._process is not None, f"host {self.name} was never started"
        return self._process.pid

    def start(self) -> None:
        assert self._process is None or self._process.poll() is not None, "already running"
        self._ready = threading.Event()
        process = start_flowhost(
            "host", project=self._project, database_url=self._database_url, **self._env
        )
        self._process = process
        self._reader = threading.Thread(
            target=self._read, args=(process, self._ready), name=f"output-{self.name}", daemon=True
        )
        self._reader.start()

    def _read(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                self.output.append(f"[{self.name} {process.pid}] {line}")
                if READY in line:
                    ready.set()

    def wait_ready(self, timeout: float) -> None:
        """Wait for the host's own readiness line; fails if it exits or the deadline passes."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(
                    f"host {self.name} exited ({self._process.returncode}) before it was "
                    f"ready:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"host {self.name} not ready after {timeout}s:\n{self.tail()}")

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def kill(self) -> int:
        """SIGKILL the host (its children follow it); returns the killed pid."""
        assert self._process is not None
        pid = self._process.pid
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self._join_reader()
        self.killed_pids.append(pid)
        return pid

    def stop(self, timeout: float = 30) -> int:
        """SIGINT, the way an operator stops a host; returns its exit status."""
        assert self._process is not None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        try:
            status = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            raise AssertionError(
                f"host {self.name} did not stop within {timeout}s:\n{self.tail()}"
            ) from None
        finally:
            self._join_reader()
        return status

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)

    def tail(self, lines: int = 40) -> str:
        return "".join(self.output[-lines:])


@contextlib.contextmanager
def running_hosts(
    count: int, project: Path, database_url: str, **env: str
) -> Iterator[list[HostProcess]]:
    """`count` hosts of `project`, ready; stopped with SIGINT at the end, each of which must
    exit cleanly. A failure inside prints every host's last output."""
    hosts = [HostProcess(f"host{i}", project, database_url, **env) for i in range(count)]
    try:
        for host in hosts:
            host.start()
        for host in hosts:
            host.wait_ready(timeout=60)
        yield hosts
    except BaseException:
        for host in hosts:
            print(host.tail(80))
        raise
    finally:
        statuses = {host.name: host.stop() for host in hosts}
    assert statuses == dict.fromkeys(statuses, 0), "\n".join(h.tail() for h in hosts)
