"""`flowhost schedules list|show|enable|disable|next` (also `flowhost schedule ...`): schedule
triggers at runtime.

Each command is one transaction on the project's database (flowhost.triggers.schedule_service);
running hosts follow a change at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from flowhost.cli import output
from flowhost.cli.common import handle_errors, json_option, run_async, settings_of
from flowhost.db.database import Connection
from flowhost.project import open_database
from flowhost.triggers import schedule_service
from flowhost.triggers.schedule_service import ScheduleFire, ScheduleView

T = TypeVar("T")


def _in_transaction(ctx: click.Context, action: Callable[[Connection], Awaitable[T]]) -> T:
    async def main() -> T:
        async with open_database(settings_of(ctx)) as database, database.transaction() as conn:
            return await action(conn)

    return run_async(main())


@click.group("schedules")
def schedule() -> None:
    """Schedule triggers: their next fires, lag, and enabling them at runtime."""


@schedule.command("list")
@json_option()
@click.pass_context
@handle_errors
def schedule_list(ctx: click.Context, as_json: bool) -> None:
    """Every schedule: cron and zone, state, next and last fire, lag."""
    views = _in_transaction(ctx, lambda conn: schedule_service.list_schedules(conn, limit=1000))
    if as_json:
        output.print_json([view.to_json() for view in views])
        return
    rows = [
        [
            view.name,
            output.status_text(_state(view)),
            view.cron or "-",
            view.timezone,
            _time(view.next_fire, view.timezone),
            _time(view.last_fired_at, view.timezone),
            _ms(view.last_lag_ms),
            str(view.total_fires),
        ]
        for view in views
    ]
    headers = ["SCHEDULE", "STATE", "CRON", "ZONE", "NEXT FIRE", "LAST FIRE", "LAG", "FIRES"]
    click.echo(output.table(rows, headers))


@schedule.command("show")
@click.argument("name")
@click.option("--fires", type=click.IntRange(1, 1000), default=10, show_default=True)
@json_option()
@click.pass_context
@handle_errors
def schedule_show(ctx: click.Context, name: str, fires: int, as_json: bool) -> None:
    """One schedule: its config and state, lag p50/p99 of its last 1000 fires, its last fires."""

    async def read(conn: Connection) -> tuple[ScheduleView, dict[str, Any], list[ScheduleFire]]:
        view = await schedule_service.get_schedule(conn, name)
        lag = await schedule_service.lag(conn, name)
        return view, lag, await schedule_service.last_fires(conn, name, fires)

    view, lag, last = _in_transaction(ctx, read)
    if as_json:
        output.print_json(
            {**view.to_json(), "lag": lag, "lastFires": [fire.to_json() for fire in last]}
        )
        return
    config = view.to_json()
    click.echo(f"schedule {view.name}  {output.status_text(_state(view))}  version {view.version}")
    click.echo(f"cron: {view.cron}  zone: {view.timezone}")
    click.echo(f"overlap: {config['overlap']}  catch-up: {config['catchup']}")
    if "payload" in view.config:
        click.echo(f"payload: {output.compact(view.config['payload'], 200)}")
    flows = ", ".join(f"{s['flow']} ({s['mode']})" for s in view.subscriptions) or "none"
    click.echo(f"subscribed flows: {flows}")
    click.echo(f"next fire: {_time(view.next_fire, view.timezone)}")
    if view.queued:
        click.echo(f"queued behind live runs: {len(view.queued)}")
    click.echo(
        f"fires: {view.total_fires}; skipped {view.skipped}, missed {view.missed}, "
        f"failed {view.failed}"
    )
    if lag["fires"]:
        click.echo(
            f"lag over the last {lag['fires']} fires: p50 {_ms(lag['p50'])}, "
            f"p99 {_ms(lag['p99'])}, max {_ms(lag['max'])}"
        )
    if last:
        click.echo("last fires:")
        rows = [
            [
                _time(fire.planned_at, view.timezone),
                _ms(fire.lag_ms),
                " ".join(k for k, on in (("catch-up", fire.catchup), ("queued", fire.queued)) if on)
                or "-",
                ", ".join(r["run_id"] for r in fire.runs) or "-",
            ]
            for fire in last
        ]
        click.echo(output.table(rows, ["PLANNED", "LAG", "KIND", "RUNS"]))


VERSION_OPTION = click.option(
    "--version",
    "version",
    type=int,
    help="Only if the schedule is still at this version (else exit 6).",
)


@schedule.command("enable")
@click.argument("name")
@VERSION_OPTION
@json_option()
@click.pass_context
@handle_errors
def schedule_enable(ctx: click.Context, name: str, version: int | None, as_json: bool) -> None:
    """Enable NAME: it fires from its next planned time on (on every host, at once)."""
    view = _in_transaction(
        ctx, lambda conn: schedule_service.enable_schedule(conn, name, version=version)
    )
    _changed(view, as_json)


@schedule.command("disable")
@click.argument("name")
@VERSION_OPTION
@json_option()
@click.pass_context
@handle_errors
def schedule_disable(ctx: click.Context, name: str, version: int | None, as_json: bool) -> None:
    """Disable NAME: it fires no more until enabled (host restarts keep it disabled)."""
    view = _in_transaction(
        ctx, lambda conn: schedule_service.disable_schedule(conn, name, version=version)
    )
    _changed(view, as_json)


@schedule.command("next")
@click.argument("name")
@click.option("-n", "--count", type=click.IntRange(1, 1000), default=5, show_default=True)
@json_option()
@click.pass_context
@handle_errors
def schedule_next(ctx: click.Context, name: str, count: int, as_json: bool) -> None:
    """The next COUNT fire times of NAME, in its zone and in UTC (from the cron, DST rules
    included)."""
    times = _in_transaction(ctx, lambda conn: schedule_service.next_fires(conn, name, count))
    if as_json:
        output.print_json([t.isoformat() for t in times])
        return
    for at in times:
        utc = at.astimezone(ZoneInfo("UTC"))
        click.echo(f"{at.isoformat()}  ({utc.strftime('%Y-%m-%d %H:%M:%S')} UTC)")


def _changed(view: ScheduleView, as_json: bool) -> None:
    if as_json:
        output.print_json(view.to_json())
        return
    next_fire = _time(view.next_fire, view.timezone)
    click.echo(
        f"schedule {view.name} {_state(view)} (version {view.version}); next fire: {next_fire}"
    )


def _state(view: ScheduleView) -> str:
    if view.status == "retired":
        return "retired"
    return "enabled" if view.enabled else "disabled"


def _time(value: datetime | None, zone: str) -> str:
    if value is None:
        return "-"
    return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
