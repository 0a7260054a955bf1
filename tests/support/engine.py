"""Run flows through a real host inside the test process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from flowhost.engine.catalog import FunctionCatalog
from flowhost.engine.host import Host
from flowhost.engine.orchestrator import start_runs
from flowhost.errors import DatabaseUnavailableError
from flowhost.project import Project, open_project
from flowhost.settings import load_settings
from flowhost.store import reads

TERMINAL = reads.TERMINAL_STATUSES


@contextlib.asynccontextmanager
async def running_host(
    project_dir: Path, database_url: str, **settings: Any
) -> AsyncIterator[Project]:
    """A project with a host serving it until the block ends."""
    loaded = load_settings(
        project_dir,
        environ={"DATABASE_URL": database_url},
        heartbeat_timeout=settings.pop("heartbeat_timeout", 5.0),
        **settings,
    )
    async with open_project(loaded) as project:
        stop = asyncio.Event()
        task = asyncio.create_task(Host(project).serve(stop))
        try:
            yield project
        finally:
            stop.set()
            await task


async def start(project: Project, flow: str, data: Any) -> uuid.UUID:
    async with project.database.transaction() as conn:
        [run_id] = await start_runs(conn, project.catalog.flows[flow], [data])
    return run_id


async def wait_for_run(project: Project, run_id: uuid.UUID, timeout: float = 30) -> dict[str, Any]:
    """Poll until the run ends (deadline-bounded); a dropped connection is polled again."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                async with project.database.connection() as conn:
                    run = await reads.get_run(conn, run_id)
            except DatabaseUnavailableError:
                run = {"status": "unknown"}
            if run["status"] in TERMINAL:
                return run
            await asyncio.sleep(0.02)


def write_functions(root: Path, files: dict[str, str]) -> Path:
    """A throwaway project: `files` maps relative paths under functions/ to source text."""
    for relative, source in files.items():
        path = root / "functions" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


__all__ = ["FunctionCatalog", "running_host", "start", "wait_for_run", "write_functions"]
