"""`flowhost`: develop, host and run flows; inspect runs; manage the schema."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

import click

from flowhost import __version__
from flowhost.cli import (
    benchmarks,
    exit_codes,
    flows,
    health,
    logs,
    output,
    schedules,
    triggers,
    worker_test,
)
from flowhost.cli.common import (
    AliasedGroup,
    colour_choice,
    handle_errors,
    input_option,
    json_option,
    run_async,
    settings_of,
)
from flowhost.cli.running import parse_input, run_flow
from flowhost.cli.serving import (
    print_problems,
    run_dev,
    serve_http,
    serve_until_stopped,
    serve_worker,
)
from flowhost.db.database import Connection, Database
from flowhost.db.migrations import migration_status, migrations_sql
from flowhost.engine import control
from flowhost.engine.awaits import describe_await
from flowhost.engine.definitions import FlowDefinition
from flowhost.project import Project, open_database, open_project
from flowhost.queue.pgqueuer_queue import queue_schema_sql
from flowhost.settings import DEFAULT_HTTP_PORT, load_settings
from flowhost.store import awaits as await_store
from flowhost.store import reads
from flowhost.store.events import events_of_run

P = ParamSpec("P")
T = TypeVar("T")


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-p",
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    envvar="FLOWHOST_PROJECT",
    show_default=True,
    help="Project directory (holds flowhost.toml and functions/).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option(
    "--color/--no-color",
    "colour",
    default=None,
    help="Colour the output, or not (default: on a terminal, unless NO_COLOR is set).",
)
@click.version_option(__version__, prog_name="flowhost")
@click.pass_context
def cli(ctx: click.Context, project: Path, verbose: int, colour: bool | None) -> None:
    """flowhost: durable flows of Python steps on Postgres."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Subcommands' contexts inherit it; click.echo strips styles when it is False.
    ctx.color = colour_choice(colour)
    ctx.obj = {"project": project, "verbose": verbose}


HTTP_OPTION = click.option(
    "--http",
    "http",
    metavar="[HOST:]PORT",
    help="Serve HTTP (webhooks, the admin API) on this address (setting `http`).",
)


@cli.command()
@click.argument(
    "directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@HTTP_OPTION
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help=f"Serve HTTP on 127.0.0.1:PORT (default {DEFAULT_HTTP_PORT}, or the next free port).",
)
@click.option(
    "--with-brokers",
    is_flag=True,
    help="Start private MQTT/AMQP brokers (Debian's mosquitto, rabbitmq-server) for the "
    "project's connectors and point them there (docs/connectors.md).",
)
@click.pass_context
@handle_errors
def dev(
    ctx: click.Context,
    directory: Path | None,
    http: str | None,
    port: int | None,
    with_brokers: bool,
) -> None:
    """Develop DIRECTORY: database, schema, host, HTTP with the admin API (its URL and token
    are printed); reloads functions when they change."""
    if http is not None and port is not None:
        raise click.UsageError("give --http or --port, not both")
    settings = load_settings(directory or ctx.obj["project"], http=http)
    run_async(run_dev(settings, port=port, with_brokers=with_brokers))


@cli.command()
@HTTP_OPTION
@click.pass_context
@handle_errors
def host(ctx: click.Context, http: str | None) -> None:
    """Run a host for the project's flows until SIGINT/SIGTERM; with --http, it also serves
    HTTP (webhooks, and the admin API when api_token is set)."""
    run_async(serve_until_stopped(load_settings(ctx.obj["project"], http=http), watch=False))


@cli.command()
@click.option("--host", "bind_host", metavar="HOST", help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on (0: any free).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes serving the socket (webhook throughput grows with them, up to the cores).",
)
# A worker of `--workers`: the supervisor's pipes (see cli/serve_workers.py).
@click.option("--ready-fd", type=int, hidden=True)
@click.option("--alive-fd", type=int, hidden=True)
@click.pass_context
@handle_errors
def serve(
    ctx: click.Context,
    bind_host: str | None,
    port: int | None,
    workers: int,
    ready_fd: int | None,
    alive_fd: int | None,
) -> None:
    """Serve HTTP alone (webhooks, health probes, the admin API) against the project's
    database, until SIGINT/SIGTERM; no step runs here. Default address: the `http` setting,
    else 127.0.0.1:8600. The admin API needs the api_token setting (FLOWHOST_API_TOKEN)."""
    settings = settings_of(ctx)
    if ready_fd is not None and alive_fd is not None and bind_host and port:
        run_async(serve_worker(settings, bind_host, port, ready_fd=ready_fd, alive_fd=alive_fd))
        return
    verbose = ctx.obj["verbose"]
    run_async(serve_http(settings, host=bind_host, port=port, workers=workers, verbose=verbose))


@cli.command()
@click.argument("flow")
@input_option("The run's")
@click.option(
    "--wait/--no-wait", default=False, help="Wait for the end when a running host serves the flow."
)
@json_option("Print one JSON object.")
@click.pass_context
@handle_errors
def run(ctx: click.Context, flow: str, input_text: str | None, wait: bool, as_json: bool) -> None:
    """Start a run of FLOW and print its events and result.

    With no host serving the flow, this command runs one until the run ends.
    Exits 0 when the run completed (or was started without waiting), 1 when it failed.
    """
    data = parse_input(input_text)
    settings = settings_of(ctx)

    async def main() -> str:
        async with open_project(settings) as project:
            print_problems(project)
            return await run_flow(project, flow, data, wait=wait, as_json=as_json)

    status = run_async(main())
    sys.exit(exit_codes.RUN_FAILED if status in ("failed", "canceled") else exit_codes.OK)


@cli.group()
def runs() -> None:
    """Inspect runs."""


runs.add_command(logs.runs_logs)


@runs.command("list")
@click.option("--flow", help="Only runs of this flow.")
@click.option(
    "--status",
    type=click.Choice(
        ["queued", "running", "awaiting", "completed", "failed", "canceled", "stalled"]
    ),
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@json_option()
@click.pass_context
@handle_errors
def runs_list(
    ctx: click.Context, flow: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """The latest runs, newest first."""

    async def main() -> list[dict[str, Any]]:
        async with open_database(settings_of(ctx)) as database, database.connection() as conn:
            return await reads.list_runs(conn, flow=flow, status=status, limit=limit)

    rows = run_async(main())
    if as_json:
        output.print_json(rows)
        return
    table = [
        [
            str(r["id"]),
            r["flow"],
            output.status_text(r["status"]) + _starts(r),
            f"{r['completed_steps']}/{r['step_count']}",
            r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
            _duration(r),
        ]
        for r in rows
    ]
    click.echo(output.table(table, ["RUN", "FLOW", "STATUS", "STEPS", "STARTED", "DURATION"]))


def _starts(row: dict[str, Any]) -> str:
    """When a delayed run starts (it is queued until then)."""
    if row["start_at"] is None or row["status"] != "queued":
        return ""
    return f" (starts {row['start_at'].astimezone().strftime('%Y-%m-%d %H:%M:%S')})"


def _duration(row: dict[str, Any]) -> str:
    if row["finished_at"] is None:
        return "-"
    return f"{(row['finished_at'] - row['created_at']).total_seconds() * 1000:.0f} ms"


@runs.command("show")
@click.argument("run_id")
@json_option()
@click.pass_context
@handle_errors
def runs_show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """One run: status, steps with attempts and results, and its events (RUN_ID may be a prefix)."""

    async def main() -> None:
        async with open_database(settings_of(ctx)) as database, database.connection() as conn:
            resolved = await reads.resolve_run_id(conn, run_id)
            run = await reads.get_run(conn, resolved)
            steps = await reads.steps_of_run(conn, resolved)
            events = await events_of_run(conn, resolved, limit=100_000)
            state = await reads.state_of_run(conn, resolved)
        if as_json:
            summary = output.run_summary(run, steps)
            summary["state"] = state
            output.print_json(summary)
            return
        click.echo(f"run {run['id']}  flow {run['flow']}  {output.status_text(run['status'])}")
        click.echo(f"input: {output.compact(run['input'], 400)}")
        click.echo(
            output.table(
                [
                    [
                        s["name"],
                        output.status_text(s["status"]),
                        str(s["attempt"]),
                        output.compact(s["result"] if s["status"] != "failed" else s["error"], 60),
                    ]
                    for s in steps
                ],
                ["STEP", "STATUS", "ATTEMPTS", "RESULT"],
            )
        )
        click.echo("events:")
        for event in events:
            click.echo(output.event_line(event, run["created_at"], with_id=True))
        if state:
            click.echo(f"state: {output.compact(state, 400)}")

    run_async(main())


# -- run control -----------------------------------------------------------------------------

CLI_ACTOR = "cli"


async def _resolve(database: Database, run_id: str) -> uuid.UUID:
    async with database.connection() as conn:
        return await reads.resolve_run_id(conn, run_id)


async def _note_if_unserved(project: Project, run_id: uuid.UUID) -> None:
    """Say so when no live host serves the run's flow: nothing would run it."""
    async with project.database.connection() as conn:
        run = await reads.get_run(conn, run_id)
        served = await reads.run_is_served(conn, run_id, project.settings.host_stale_after)
    if not served:
        click.echo(
            f"note: no running host serves flow {run['flow']!r}; start one (flowhost host) "
            "to run it",
            err=True,
        )


class _MovedRun(Protocol):
    @property
    def run_id(self) -> uuid.UUID: ...


Moved = TypeVar("Moved", bound=_MovedRun)
ControlAction = Callable[[Connection, uuid.UUID, Mapping[str, FlowDefinition]], Awaitable[Moved]]


def _move_run(ctx: click.Context, run_id: str, action: ControlAction[Moved]) -> Moved:
    """Run a control action that sets a run going (restart, replay, retry) in one transaction,
    and say so when no live host serves the run's flow."""

    async def main() -> Moved:
        async with open_project(settings_of(ctx)) as project:
            resolved = await _resolve(project.database, run_id)
            async with project.database.transaction() as conn:
                moved = await action(conn, resolved, project.catalog.flows)
            await _note_if_unserved(project, moved.run_id)
            return moved

    return run_async(main())


@runs.command("cancel")
@click.argument("run_id")
@click.option("--reason", help="Why, recorded in the run's flow.canceled event.")
@json_option()
@click.pass_context
@handle_errors
def runs_cancel(ctx: click.Context, run_id: str, reason: str | None, as_json: bool) -> None:
    """Cancel a live run (RUN_ID may be a prefix): no further step starts, and attempts running
    on any host are stopped (cancel, then SIGTERM and SIGKILL after kill_grace)."""

    async def main() -> control.Canceled:
        async with open_database(settings_of(ctx)) as database:
            resolved = await _resolve(database, run_id)
            async with database.transaction() as conn:
                return await control.cancel_run(conn, resolved, by=CLI_ACTOR, reason=reason)

    canceled = run_async(main())
    if as_json:
        output.print_json(
            {
                "id": str(canceled.run_id),
                "status": "canceled",
                "previous_status": canceled.previous_status,
                "steps": canceled.steps,
            }
        )
        return
    stopped = ", ".join(canceled.steps) or "none"
    click.echo(f"run {canceled.run_id} canceled (was {canceled.previous_status}); steps: {stopped}")


@runs.command("restart")
@click.argument("run_id")
@json_option()
@click.pass_context
@handle_errors
def runs_restart(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Start a new run of the run's flow with the same input; a live old run is canceled."""

    restarted = _move_run(
        ctx, run_id, lambda conn, run, flows: control.restart_run(conn, run, flows, by=CLI_ACTOR)
    )
    if as_json:
        output.print_json(
            {
                "id": str(restarted.run_id),
                "restart_of": str(restarted.restart_of),
                "canceled": restarted.canceled,
            }
        )
        return
    old = f"{restarted.restart_of}{' (canceled)' if restarted.canceled else ''}"
    click.echo(f"run {restarted.run_id} started: restart of {old}")


@runs.command("replay")
@click.argument("run_id")
@click.option("--from", "from_step", required=True, metavar="STEP", help="The step to run again.")
@json_option()
@click.pass_context
@handle_errors
def runs_replay(ctx: click.Context, run_id: str, from_step: str, as_json: bool) -> None:
    """Start a new run that reuses what the run recorded before STEP started (results, emits,
    state), and runs STEP and what follows it again."""

    replayed = _move_run(
        ctx,
        run_id,
        lambda conn, run, flows: control.replay_run(conn, run, from_step, flows, by=CLI_ACTOR),
    )
    if as_json:
        output.print_json(
            {
                "id": str(replayed.run_id),
                "replay_of": str(replayed.replay_of),
                "from_step": replayed.from_step,
                "reused": replayed.reused,
            }
        )
        return
    reused = ", ".join(replayed.reused) or "nothing"
    click.echo(
        f"run {replayed.run_id} started: replay of {replayed.replay_of} from step "
        f"{replayed.from_step} (reusing {reused})"
    )


@runs.command("retry")
@click.argument("run_id")
@json_option()
@click.pass_context
@handle_errors
def runs_retry(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Take a failed (or stalled) run back to running: its failed steps run again, with a fresh
    budget of attempts."""

    retried = _move_run(
        ctx, run_id, lambda conn, run, flows: control.retry_run(conn, run, flows, by=CLI_ACTOR)
    )
    if as_json:
        output.print_json(
            {
                "id": str(retried.run_id),
                "status": "running",
                "previous_status": retried.previous_status,
                "steps": retried.steps,
                "unskipped": retried.unskipped,
            }
        )
        return
    steps = ", ".join(f"{name} (attempt {n})" for name, n in retried.steps.items())
    click.echo(f"run {retried.run_id} retried (was {retried.previous_status}): {steps}")


@runs.command("awaits")
@click.argument("run_id")
@json_option()
@click.pass_context
@handle_errors
def runs_awaits(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """The awaits of a run: type, position, status, due times and webhook URLs.

    URLs start with the `public_url` setting (just the path when it is not set): whoever may
    run this command may resolve the run's webhook awaits."""
    settings = settings_of(ctx)

    async def main() -> list[dict[str, Any]]:
        async with open_database(settings) as database, database.connection() as conn:
            resolved = await reads.resolve_run_id(conn, run_id)
            return await await_store.awaits_of_run(conn, resolved)

    rows = [describe_await(row, settings.public_url) for row in run_async(main())]
    if as_json:
        output.print_json(rows)
        return
    table = [
        [
            r["step"],
            r["position"],
            r["type"],
            output.status_text(r["status"]),
            _time(r["resolve_at"]),
            _time(r["timeout_at"]),
            " ".join(x for x in (r["method"], r["url"] or r["event"]) if x) or "-",
        ]
        for r in rows
    ]
    click.echo(
        output.table(table, ["STEP", "POSITION", "TYPE", "STATUS", "RESOLVES", "TIMES OUT", "URL"])
    )


def _time(value: Any) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S %Z")


runs.add_command(health.runs_state)
runs.add_command(health.runs_parked)
runs.add_command(health.runs_migrate)
cli.add_command(health.stats)
cli.add_command(triggers.trigger)
cli.add_alias("triggers", "trigger")
cli.add_command(schedules.schedule)
cli.add_alias("schedule", "schedules")
cli.add_command(flows.flows)
cli.add_command(worker_test.worker)
cli.add_command(benchmarks.bench)


@cli.group()
def db() -> None:
    """The flowhost schema in the project's database."""


@db.command("migrate")
@json_option()
@click.pass_context
@handle_errors
def db_migrate(ctx: click.Context, as_json: bool) -> None:
    """Apply pending migrations and install PgQueuer's tables."""

    async def main() -> list[Any]:
        async with open_database(settings_of(ctx), prepare=False) as database:
            from flowhost.project import prepare_schema

            async with database.connection() as conn:
                before = await migration_status(conn)
            await prepare_schema(database)
            return [m for m in before if m.applied_at is None]

    applied = run_async(main())
    if as_json:
        output.print_json({"applied": [_migration_json(m) for m in applied]})
        return
    for migration in applied:
        click.echo(f"applied {migration.version:04d}_{migration.name}")
    click.echo("schema is up to date")


def _migration_json(migration: Any) -> dict[str, Any]:
    return {
        "version": migration.version,
        "name": migration.name,
        "applied_at": None if migration.applied_at is None else migration.applied_at.isoformat(),
    }


@db.command("status")
@json_option()
@click.pass_context
@handle_errors
def db_status(ctx: click.Context, as_json: bool) -> None:
    """Which migrations are applied."""

    async def main() -> list[Any]:
        async with (
            open_database(settings_of(ctx), prepare=False) as database,
            database.connection() as conn,
        ):
            return await migration_status(conn)

    rows = run_async(main())
    if as_json:
        output.print_json([_migration_json(m) for m in rows])
    else:
        _print_migrations(rows)
    if any(m.applied_at is None for m in rows):
        sys.exit(exit_codes.RUN_FAILED)


def _print_migrations(rows: list[Any]) -> None:
    click.echo(
        output.table(
            [
                [
                    f"{m.version:04d}",
                    m.name,
                    m.applied_at.isoformat() if m.applied_at else "pending",
                ]
                for m in rows
            ],
            ["VERSION", "NAME", "APPLIED"],
        )
    )


@db.command("sql")
@click.option(
    "--queue/--no-queue", default=True, show_default=True, help="Include PgQueuer's schema."
)
def db_sql(queue: bool) -> None:
    """Print the SQL that `db migrate` applies."""
    click.echo(migrations_sql(), nl=False)
    if queue:
        click.echo("\n-- PgQueuer schema (installed through PgQueuer's own API)")
        click.echo(queue_schema_sql())


def main() -> None:
    cli(prog_name="flowhost")


__all__ = ["cli", "main"]
