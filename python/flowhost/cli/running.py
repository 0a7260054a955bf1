"""`flowhost run`: start a run, make sure a host runs it, and follow it to its end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import click

from flowhost.cli import output
from flowhost.cli.progress import StatusLine
from flowhost.engine.host import Host
from flowhost.engine.starting import start_run
from flowhost.errors import InvalidInputError
from flowhost.project import Project
from flowhost.store import reads
from flowhost.store.events import events_of_run

POLL_INTERVAL = 0.05


def parse_input(text: str | None, option: str = "--input") -> Any:
    """`--input` (or another `option`): JSON text, or `@path` to a JSON file; none is `{}`."""
    if text is None:
        return {}
    source = option
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot read input file {path}: {exc.strerror}") from exc
        source = str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


async def run_flow(
    project: Project, flow_name: str, data: Any, *, wait: bool, as_json: bool
) -> str:
    """Start a run; returns its final status, or its status now ("running", or "queued" when
    it waits for a slot) when not waiting for it."""
    flow = project.catalog.flow(flow_name)
    async with project.database.transaction() as conn:
        run_id = (await start_run(conn, flow, data)).run_id
    async with project.database.connection() as conn:
        served = await reads.hosts_serving(
            conn, flow.name, flow.hash, stale_after=project.settings.host_stale_after
        )
        # `queued` when the flow's limits make it wait for a slot (docs/flow-control.md); a
        # host may already have run it, but without --wait its end is not this command's.
        queued = (await reads.get_run(conn, run_id))["status"] == "queued"
    status = "queued" if queued else "running"
    if not as_json:
        where = "a running host" if served else "a host started by this command"
        click.echo(f"run {run_id} started: flow {flow.name}, run by {where}")
    if served and not wait:
        if as_json:
            output.print_json({"id": str(run_id), "flow": flow.name, "status": status})
        return status
    if served:
        return await follow(project, run_id, as_json=as_json)
    stop = asyncio.Event()
    host = Host(project)
    async with asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(host.serve(stop))
        try:
            status = await follow(project, run_id, as_json=as_json, host_task=serving)
        finally:
            stop.set()
    return status


async def follow(
    project: Project,
    run_id: uuid.UUID,
    *,
    as_json: bool,
    host_task: asyncio.Task[None] | None = None,
) -> str:
    """Print the run's events as they are appended, under a status line on a terminal;
    returns its final status."""
    last_id = 0
    started = None
    async with StatusLine(f"run {str(run_id)[:8]} starting") as status:
        while True:
            async with project.database.connection() as conn:
                run = await reads.get_run(conn, run_id)
                events = await events_of_run(conn, run_id, after=last_id)
            started = started or run["created_at"]
            status.text = (
                f"run {str(run_id)[:8]} {run['status']}: "
                f"{run['completed_steps']}/{run['step_count']} steps"
            )
            for event in events:
                last_id = event.id
                if not as_json:
                    status.echo(output.event_line(event, started))
            if run["status"] in reads.TERMINAL_STATUSES and not events:
                break
            if host_task is not None and host_task.done():
                host_task.result()  # the host stopped early: surface why
            with contextlib.suppress(TimeoutError):
                await asyncio.sleep(POLL_INTERVAL)
    async with project.database.connection() as conn:
        steps = await reads.steps_of_run(conn, run_id)
    summary = output.run_summary(run, steps)
    if as_json:
        output.print_json(summary)
    else:
        if run["status"] == "completed":
            click.echo(f"result: {output.compact(run['result'], 400)}")
        elif run["error"]:
            click.echo(
                f"error: {run['error'].get('type')}: {run['error'].get('message')} "
                f"(step {run['error'].get('step')})"
            )
        click.echo(f"run {run_id} {output.status_text(run['status'])}")
    return str(run["status"])
