"""Shared by the worker scenarios: a supervisor over a throwaway functions directory. Steps get
the SDK's in-memory backend (`flowhost_worker.testing.MemoryBackend`), so that what is timed is
the child and the protocol, not Postgres."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flowhost.engine.definitions import StepDefinition
from flowhost.engine.discovery import discover
from flowhost.settings import load_settings
from flowhost.workers.commands import RuntimeCommands
from flowhost.workers.supervisor import Supervisor
from flowhost_worker.testing import MemoryBackend

__all__ = ["MemoryBackend", "fake_run_id", "supervised"]


def fake_run_id(job: int) -> str:
    """A run id for a job run outside any real run."""
    return f"00000000-0000-4000-8000-{job:012d}"


@contextlib.asynccontextmanager
async def supervised(
    files: dict[str, str], **settings: Any
) -> AsyncIterator[tuple[Supervisor, dict[str, StepDefinition]]]:
    """A supervisor serving the steps defined by `files` (name -> source), by "flow/step"."""
    with tempfile.TemporaryDirectory(prefix="fh-bench-") as root:
        functions = Path(root) / "functions"
        functions.mkdir()
        for name, source in files.items():
            (functions / name).write_text(source)
        loaded = load_settings(root, environ={}, **settings)
        commands = RuntimeCommands.from_settings(loaded)
        found = await discover(functions, commands)
        if found.problems:
            raise RuntimeError(f"bench functions are invalid: {found.problems}")
        steps = {
            f"{s.flow}/{s.name}": s for flow in found.flows.values() for s in flow.steps.values()
        }
        async with Supervisor(loaded, commands, host_id="bench") as supervisor:
            supervisor.prepare(list(steps.values()))
            yield supervisor, steps
