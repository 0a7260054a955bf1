"""`flowhost runs logs RUN [--follow] [--json]`: a run's logs and step starts and ends, live
with --follow until the run is over. Straight from the database (the same fan-out as the
API's event streams): no server needed."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import click

from flowhost.cli import exit_codes, output
from flowhost.cli.common import handle_errors, json_option, run_async, settings_of
from flowhost.cli.progress import StatusLine
from flowhost.db.database import Database
from flowhost.errors import RunNotFoundError
from flowhost.project import open_database
from flowhost.realtime.fanout import TERMINAL, Fanout, StreamEvent
from flowhost.realtime.follow import events_of_run, follow_run, run_status
from flowhost.store import reads

# What `runs logs` shows: the logs, and where steps and the run start and end.
SHOWN = frozenset(
    {
        "log",
        "step.started",
        "step.completed",
        "step.failed",
        "step.retry",
        "step.skipped",
        "step.canceled",
        "step.stalled",
        "flow.started",
        "flow.completed",
        "flow.failed",
        "flow.canceled",
        "flow.stalled",
        "flow.retried",
    }
)
# The run's status after a flow.* event, as the status line says it.
FLOW_STATUS = {"started": "running", "retried": "running", "migrated": "running"}
LEVEL_COLOURS = {"debug": "bright_black", "info": None, "warning": "yellow", "error": "red"}


@click.command("logs")
@click.argument("run_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
@json_option("One JSON object per line (JSON Lines).")
@click.pass_context
@handle_errors
def runs_logs(ctx: click.Context, run_id: str, follow: bool, as_json: bool) -> None:
    """A run's logs and its steps' starts and ends (RUN_ID may be a prefix).

    With --follow, new lines are printed as they are recorded, until the run is over; the
    exit code is then 0 when it completed, 1 when it failed, was canceled or stalled.
    """

    async def main() -> str | None:
        async with open_database(settings_of(ctx)) as database:
            async with database.connection() as conn:
                resolved = await reads.resolve_run_id(conn, run_id)
            return await print_logs(database, resolved, follow=follow, as_json=as_json)

    status = run_async(main())
    if follow and status in TERMINAL and status != "completed":
        sys.exit(exit_codes.RUN_FAILED)


async def print_logs(
    database: Database, run_id: uuid.UUID, *, follow: bool, as_json: bool
) -> str | None:
    """Print the run's lines (and, following, the new ones until it is over); returns its
    status at the end."""
    if await run_status(database, run_id) is None:
        raise RunNotFoundError(f"no run {run_id}")
    if not follow:
        # What is recorded, from the table alone: no listener, nothing announced for it.
        async for batch in events_of_run(database, run_id):
            _print(batch, as_json=as_json)
        return await run_status(database, run_id)
    fanout = Fanout(database)
    try:
        async with StatusLine(f"run {str(run_id)[:8]}: following its logs") as status:
            async for batch in follow_run(fanout, database, run_id, heartbeat=3600):
                _print(batch, as_json=as_json, status=status)
    finally:
        await fanout.close()
    return await run_status(database, run_id)


def _print(batch: list[StreamEvent], *, as_json: bool, status: StatusLine | None = None) -> None:
    echo = click.echo if status is None else status.echo
    for event in batch:
        if event.type in SHOWN:
            echo(json_line(event) if as_json else text_line(event))
        if status is not None and event.type.startswith("flow."):
            what = FLOW_STATUS.get(event.type.partition(".")[2], event.type.partition(".")[2])
            status.text = f"run {str(event.run_id)[:8]} {what}: following its logs"
    sys.stdout.flush()


def json_line(event: StreamEvent) -> str:
    return event.json


def text_line(event: StreamEvent) -> str:
    colour = output.colour_enabled()
    when = event.ts.astimezone().strftime("%H:%M:%S.%f")[:-3]
    where = f"{event.step}#{event.attempt}" if event.step and event.attempt else event.step or ""
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    if event.type == "log":
        text = log_text(str(data.get("level", "info")), data.get("message"), data.get("fields"))
    else:
        kind, _, what = event.type.partition(".")
        status = {**FLOW_STATUS, "retry": "failed"}.get(what, what)
        label = f"{kind} {output.status_text(status) if colour else what}"
        text = f"{label}{_detail(event.type, data)}"
    dim = click.style(when, fg="bright_black") if colour else when
    return f"{dim}  {where:<20} {text}".rstrip()


def log_text(level: str, message: Any, fields: Any) -> str:
    """A log line: its level (coloured on a terminal), message and fields."""
    label = f"{level.upper():<7}"
    if output.colour_enabled():
        label = click.style(label, fg=LEVEL_COLOURS.get(level), bold=level == "error")
    shown = " ".join(
        f"{key}={output.compact(value, 80)}"
        for key, value in (fields if isinstance(fields, dict) else {}).items()
    )
    return f"{label} {message}{' ' + shown if shown else ''}"


def _detail(kind: str, data: dict[str, Any]) -> str:
    error = data.get("error") if isinstance(data.get("error"), dict) else None
    if kind == "step.completed" and data.get("duration_ms") is not None:
        return f" ({data['duration_ms']} ms)"
    if kind == "step.retry" and error:
        return f": {error.get('type')}: {error.get('message')} (again in {data.get('delay')}s)"
    if error:
        return f": {error.get('type')}: {error.get('message')}"
    if data.get("reason"):
        return f": {data['reason']}"
    return ""
