"""Fixtures for tests that run real child processes against a fake host."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fake_host import FakeHost

FUNCTIONS = Path(__file__).resolve().parent / "functions"


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Short and private, as the host makes it: a unix socket path holds at most 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="fh-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def host(socket_dir: Path) -> AsyncIterator[FakeHost]:
    fake = FakeHost(socket_dir)
    yield fake
    await fake.close()


@pytest.fixture
def functions() -> Path:
    return FUNCTIONS


@pytest.fixture
async def processes() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Processes a test started; any still running at the end are killed and reaped."""
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()
