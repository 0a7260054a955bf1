"""Hosts whose steps await: await declarations set on the discovered flows, and helpers to read
a run's awaits and events."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from flowhost.engine.definitions import AwaitDefinition, FlowDefinition
from flowhost.engine.host import Host
from flowhost.project import Project, open_project
from flowhost.settings import load_settings
from flowhost.store.events import events_of_run

# (flow, step) -> {"before": AwaitDefinition, "after": AwaitDefinition}
Awaits = Mapping[tuple[str, str], Mapping[str, AwaitDefinition]]


def with_awaits(flows: dict[str, FlowDefinition], awaits: Awaits) -> None:
    """Give steps of the discovered flows their awaits (what the SDKs will declare)."""
    for (flow_name, step_name), positions in awaits.items():
        flow = flows[flow_name]
        step = dataclasses.replace(
            flow.step(step_name),
            await_before=positions.get("before"),
            await_after=positions.get("after"),
        )
        flows[flow_name] = FlowDefinition(flow.name, flow.entry, {**flow.steps, step_name: step})


@contextlib.asynccontextmanager
async def awaiting_host(
    project_dir: Path,
    database_url: str,
    awaits: Awaits,
    *,
    http: tuple[str, int] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[Project, Host]]:
    loaded = load_settings(
        project_dir,
        environ={"DATABASE_URL": database_url},
        heartbeat_timeout=settings.pop("heartbeat_timeout", 5.0),
        **settings,
    )
    async with open_project(loaded) as project:
        with_awaits(project.catalog.flows, awaits)
        stop = asyncio.Event()
        host = Host(project, http=http)
        task = asyncio.create_task(host.serve(stop))
        try:
            yield project, host
        finally:
            stop.set()
            await task


async def await_rows(project: Project, run_id: uuid.UUID) -> list[dict[str, Any]]:
    async with project.database.connection() as conn:
        cursor = await conn.execute(
            "SELECT * FROM flowhost.awaits WHERE run_id = %s ORDER BY id", (run_id,)
        )
        return await cursor.fetchall()


async def event_types(project: Project, run_id: uuid.UUID) -> list[tuple[str, str | None]]:
    async with project.database.connection() as conn:
        return [(e.type, e.step) for e in await events_of_run(conn, run_id, limit=100_000)]


async def poll(project: Project, query: str, params: tuple[Any, ...], timeout: float = 15) -> Any:
    """Poll `query` until its first column is truthy (deadline-bounded); returns the row."""
    async with asyncio.timeout(timeout):
        while True:
            async with project.database.connection() as conn:
                row = await (await conn.execute(query, params)).fetchone()  # type: ignore[arg-type]
            if row is not None and next(iter(row.values())):
                return row
            await asyncio.sleep(0.02)
