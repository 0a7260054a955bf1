"""Browser tests: `flowhost dev` in a child process and Debian's Chromium driven by Playwright
(launched with `executable_path`: nothing is downloaded)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from tests.support.cli import start_flowhost

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def chromium_path() -> str:
    """Debian's chromium (`apt-get install chromium`), or FLOWHOST_CHROMIUM."""
    found = os.environ.get("FLOWHOST_CHROMIUM") or shutil.which("chromium")
    if not found:
        raise AssertionError(
            "the browser tests need Chromium: apt-get install chromium (or set "
            "FLOWHOST_CHROMIUM to a Chromium or Chrome binary)"
        )
    return found


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


class DevServer:
    """`flowhost dev PROJECT`; its output is read by a thread for as long as it lives (a pipe
    nobody reads would block it), and `wait_for` waits for a line of it."""

    def __init__(self, project: Path, database_url: str | None) -> None:
        self.output: list[str] = []
        self._seen = threading.Condition()
        self.process = start_flowhost(
            "dev", str(project), project=project, database_url=database_url
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                with self._seen:
                    self.output.append(line)
                    self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, marker: str, timeout: float = 60) -> str:
        """The first output line containing `marker` (waits for it, with a deadline)."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while True:
                for line in self.output:
                    if marker in line:
                        return line
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"flowhost dev exited:\n{''.join(self.output)}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {marker!r} after {timeout}s:\n{''.join(self.output)}")
                self._seen.wait(left)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._reader.join(timeout=10)


@contextlib.contextmanager
def dev_server(project: Path, database_url: str | None) -> Iterator[tuple[DevServer, str]]:
    """A running `flowhost dev` and the dashboard URL it printed (with its token)."""
    server = DevServer(project, database_url)
    try:
        url = server.wait_for("dashboard:").split("dashboard:", 1)[1].strip()
        server.wait_for("host ready")
        yield server, url
    finally:
        code = server.stop()
        assert code == 0, "".join(server.output)
