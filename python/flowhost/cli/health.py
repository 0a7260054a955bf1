"""`flowhost stats`, and the run-health commands of `flowhost runs`: state as of an event,
parked runs, migrating runs onto the definition the hosts serve."""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

import click

from flowhost.cli import exit_codes, output
from flowhost.cli.common import handle_errors, json_option, run_async, settings_of
from flowhost.errors import InvalidInputError
from flowhost.project import open_database
from flowhost.store import reads, statistics, versions
from flowhost.store.state_history import state_at


class FlowOrCommand(click.Group):
    """`flowhost stats [FLOW]` beside `flowhost stats rebuild`: a first argument that is not a
    subcommand names a flow."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The group's own options are flags, so the first word that is not one is the
        # subcommand or the flow.
        for index, arg in enumerate(args):
            if not arg.startswith("-"):
                if arg not in self.commands:
                    ctx.meta["flowhost.stats.flow"] = args.pop(index)
                break
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] [FLOW] | rebuild [--check]")


@click.group(cls=FlowOrCommand, invoke_without_command=True)
@json_option()
@click.pass_context
@handle_errors
def stats(ctx: click.Context, as_json: bool) -> None:
    """Runs per flow by status and their durations; with FLOW, also its steps and the p50/p95
    of its latest completed runs."""
    if ctx.invoked_subcommand is not None:
        return
    flow: str | None = ctx.meta.get("flowhost.stats.flow")

    async def main() -> dict[str, Any]:
        async with open_database(settings_of(ctx)) as database, database.connection() as conn:
            flows = await statistics.flow_statistics(conn, flow)
            if flow is None:
                return {"flows": flows}
            if not flows:
                raise InvalidInputError(f"no statistics for flow {flow!r}")
            return {
                "flows": flows,
                "durations": await statistics.duration_percentiles(conn, flow),
                "steps": await statistics.step_statistics(conn, flow),
            }

    found = run_async(main())
    if as_json:
        output.print_json(found)
        return
    click.echo(_flow_table(found["flows"]))
    if flow is None:
        return
    row, durations = found["flows"][0], found["durations"]
    if durations["runs"]:
        click.echo(
            f"\ndurations of completed runs: mean {_ms(_mean(row))}, max "
            f"{_ms(row['max_duration_ms'])}; over the latest {durations['runs']}: p50 "
            f"{_ms(durations['p50'])}, p95 {_ms(durations['p95'])}"
        )
    click.echo("\n" + _step_table(found["steps"]))


def _flow_table(rows: list[dict[str, Any]]) -> str:
    counts = ("total", "queued", "running", "awaiting", "completed", "failed", "canceled")
    return output.table(
        [
            [
                r["flow"],
                *(str(r[c]) for c in counts),
                str(r["stalled"]),
                _ms(_mean(r)),
                _ms(r["max_duration_ms"]) if r["completed"] else "-",
                _when(r["last_run_at"]),
            ]
            for r in rows
        ],
        ["FLOW", *(c.upper() for c in counts), "STALLED", "MEAN", "MAX", "LAST RUN"],
    )


def _step_table(rows: list[dict[str, Any]]) -> str:
    counts = ("completed", "failed", "retried", "skipped")
    return output.table(
        [
            [
                r["step"],
                *(str(r[c]) for c in counts),
                _ms(r["total_duration_ms"] / r["completed"]) if r["completed"] else "-",
                _ms(r["max_duration_ms"]) if r["completed"] else "-",
                _when(r["last_finished_at"]),
            ]
            for r in rows
        ],
        ["STEP", *(c.upper() for c in counts), "MEAN", "MAX", "LAST FINISHED"],
    )


def _mean(row: dict[str, Any]) -> float | None:
    return row["total_duration_ms"] / row["completed"] if row["completed"] else None


def _ms(value: float | Decimal | None) -> str:
    if value is None:
        return "-"
    value = float(value)
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.1f} ms"


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


@stats.command("rebuild")
@click.option("--check", is_flag=True, help="Only compare with the events; exit 1 if they differ.")
@json_option()
@click.pass_context
@handle_errors
def stats_rebuild(ctx: click.Context, check: bool, as_json: bool) -> None:
    """Recompute flow and step statistics from the event log (the source of truth)."""

    async def main() -> statistics.Rebuild:
        async with open_database(settings_of(ctx)) as database, database.connection() as conn:
            return await statistics.rebuild_statistics(conn, write=not check)

    rebuild = run_async(main())
    if as_json:
        output.print_json(
            {
                "flows": rebuild.flows,
                "steps": rebuild.steps,
                "written": rebuild.written,
                "differences": [dataclasses.asdict(d) for d in rebuild.differences],
            }
        )
        if check and rebuild.differences:
            sys.exit(exit_codes.RUN_FAILED)
        return
    for difference in rebuild.differences:
        click.echo(("differs: " if check else "corrected: ") + str(difference))
    if check:
        if rebuild.differences:
            click.echo(f"{len(rebuild.differences)} numbers differ from the events")
            sys.exit(exit_codes.RUN_FAILED)
        click.echo(
            f"statistics of {rebuild.flows} flows and {rebuild.steps} steps agree with the events"
        )
        return
    click.echo(f"rebuilt statistics of {rebuild.flows} flows and {rebuild.steps} steps")


@click.command("state")
@click.argument("run_id")
@click.option(
    "--at",
    "event_id",
    type=click.IntRange(min=1),
    help="The state as it was after this event (an id from `runs show`).",
)
@json_option()
@click.pass_context
@handle_errors
def runs_state(ctx: click.Context, run_id: str, event_id: int | None, as_json: bool) -> None:
    """A run's state: now, or as of event EVENT_ID (rebuilt from its state events)."""

    async def main() -> dict[str, Any]:
        async with open_database(settings_of(ctx)) as database, database.connection() as conn:
            resolved = await reads.resolve_run_id(conn, run_id)
            await reads.get_run(conn, resolved)
            if event_id is None:
                return await reads.state_of_run(conn, resolved)
            return await state_at(conn, resolved, event_id)

    state = run_async(main())
    if as_json:
        output.print_json(state)
        return
    if not state:
        click.echo("(no state)")
    for key, value in state.items():
        click.echo(f"{key} = {output.compact(value, 400)}")


@click.command("parked")
@click.option("--flow", help="Only runs of this flow.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@json_option()
@click.pass_context
@handle_errors
def runs_parked(ctx: click.Context, flow: str | None, limit: int, as_json: bool) -> None:
    """Live runs whose flow definition no live host serves: they wait for a host with their
    code. Migrate them (`runs migrate`), cancel them, or keep them waiting."""
    settings = settings_of(ctx)

    async def main() -> list[versions.ParkedRun]:
        async with open_database(settings) as database, database.connection() as conn:
            return await versions.parked_runs(
                conn, stale_after=settings.host_stale_after, flow=flow, limit=limit
            )

    parked = run_async(main())
    if as_json:
        output.print_json([run.to_json() for run in parked])
        return
    click.echo(
        output.table(
            [
                [
                    str(run.id),
                    run.flow,
                    output.status_text(run.status),
                    run.definition_hash,
                    _when(run.since),
                ]
                for run in parked
            ],
            ["RUN", "FLOW", "STATUS", "DEFINITION", "SINCE"],
        )
    )


@click.command("migrate")
@click.argument("run_id", required=False)
@click.option("--flow", help="Every live run of this flow on another definition.")
@click.option(
    "--to",
    "to_hash",
    metavar="HASH",
    help="The definition to adopt, when live hosts serve several.",
)
@json_option()
@click.pass_context
@handle_errors
def runs_migrate(
    ctx: click.Context, run_id: str | None, flow: str | None, to_hash: str | None, as_json: bool
) -> None:
    """Move RUN (or every run of --flow) onto the definition the live hosts serve. A run with
    a scheduled step that definition lacks is refused (exit 1)."""
    if (run_id is None) == (flow is None):
        raise click.UsageError("give a RUN or --flow FLOW (one of them)")
    settings = settings_of(ctx)

    async def main() -> versions.Migration:
        async with open_database(settings) as database, database.transaction() as conn:
            resolved = None if run_id is None else await reads.resolve_run_id(conn, run_id)
            return await versions.migrate_live_runs(
                conn,
                run_id=resolved,
                flow=flow,
                stale_after=settings.host_stale_after,
                to_hash=to_hash,
                by="flowhost runs migrate",
            )

    migration = run_async(main())
    if as_json:
        output.print_json(
            {
                "flow": migration.flow,
                "to": migration.to_hash,
                "migrated": {str(k): v for k, v in migration.moved.items()},
                "refused": {str(k): v for k, v in migration.refused.items()},
            }
        )
    else:
        for moved, previous in migration.moved.items():
            click.echo(f"run {moved}: {previous} -> {migration.to_hash}")
        for refused, missing in migration.refused.items():
            click.echo(
                f"run {refused}: refused, definition {migration.to_hash} lacks its scheduled "
                f"step{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
            )
        if not migration.moved and not migration.refused:
            click.echo(
                f"already on definition {migration.to_hash}"
                if run_id is not None
                else f"no live run of {migration.flow} is on another definition"
            )
    if migration.refused:
        sys.exit(exit_codes.RUN_FAILED)
