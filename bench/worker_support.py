"""Shared by the worker scenarios: a supervisor over a throwaway functions directory, and a
context backend held in memory (so that what is timed is the child and the protocol, not
Postgres)."""

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


class MemoryBackend:
    """`flowhost_worker.ContextBackend` over a dict."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    async def state_get(self, key: str) -> tuple[bool, Any]:
        return (key in self.state, self.state.get(key))

    async def state_set(self, key: str, value: Any) -> None:
        self.state[key] = value

    async def state_delete(self, key: str) -> None:
        self.state.pop(key, None)

    async def state_list(self) -> list[str]:
        return sorted(self.state)

    async def emit(self, name: str, payload: Any) -> None:
        pass

    async def flow_start(self, flow: str, input: Any, idempotency_key: str | None) -> str:
        raise NotImplementedError("the bench starts no flows")

    async def flow_cancel(self, run_id: str | None) -> bool:
        return False

    async def flow_is_running(
        self, flow: str | None, run_id: str | None, exclude_run_ids: list[str]
    ) -> bool:
        return False

    def log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        pass

    def heartbeat(self) -> None:
        pass

    def progress(self, value: float, message: str | None) -> None:
        pass


def execute_params(step: StepDefinition, data: Any, job: int) -> dict[str, Any]:
    run_id = f"00000000-0000-4000-8000-{job:012d}"
    return {
        "job": {
            "run_id": run_id,
            "flow": step.flow,
            "step": step.name,
            "attempt": 1,
            "max_attempts": 1,
            "idempotency_key": f"{run_id}:{step.name}",
            "file": step.file,
            "handler": step.function,
        },
        "input": data,
        "timeout": None,
    }


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
