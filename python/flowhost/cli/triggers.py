"""`flowhost trigger list|show|fire|replay|retire`: the trigger registry from the command line.

Each command works on the project's database alone (no discovery): a fire starts runs on the
definitions the hosts registered, and says so when no live host serves one of those flows.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from flowhost.cli import exit_codes, output
from flowhost.cli.common import (
    handle_errors,
    input_option,
    json_option,
    run_async,
    settings_of,
)
from flowhost.cli.running import parse_input
from flowhost.db.database import Database
from flowhost.errors import InvalidInputError, TriggerInputError
from flowhost.project import open_database
from flowhost.store import reads
from flowhost.store import triggers as store
from flowhost.store.triggers import TriggerEvent, TriggerView
from flowhost.triggers import service
from flowhost.triggers.declarations import STATUSES, TRIGGER_TYPES
from flowhost.triggers.firing import Fired
from flowhost.triggers.replay import MAX_REPLAY, Replayed

CLI_SOURCE = "cli"


@click.group()
def trigger() -> None:
    """Triggers: list, show, fire, replay, retire."""


@trigger.command("list")
@click.option(
    "--type", "kind", type=click.Choice(TRIGGER_TYPES), help="Only triggers of this type."
)
@click.option("--status", type=click.Choice(STATUSES), help="Only triggers with this status.")
@click.option("--limit", type=click.IntRange(1, service.MAX_LIST), default=100, show_default=True)
@json_option()
@click.pass_context
@handle_errors
def trigger_list(
    ctx: click.Context, kind: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """The triggers, by name, with their subscribers and fires."""

    async def main() -> list[TriggerView]:
        async with open_database(settings_of(ctx)) as database, database.connection() as conn:
            return await service.list_triggers(conn, type=kind, status=status, limit=limit)

    views = run_async(main())
    if as_json:
        output.print_json([view.to_json() for view in views])
        return
    rows = [
        [
            view.name,
            view.type,
            output.status_text(view.status),
            view.source,
            ", ".join(
                f"{s.flow}{'' if s.mode == 'auto' else ' (manual)'}" for s in view.subscriptions
            )
            or "-",
            str(view.total_fires),
            _time(view.last_fired_at),
        ]
        for view in views
    ]
    click.echo(
        output.table(rows, ["TRIGGER", "TYPE", "STATUS", "SOURCE", "FLOWS", "FIRES", "LAST FIRED"])
    )


@trigger.command("show")
@click.argument("name")
@click.option(
    "--events", "count", type=click.IntRange(0, service.MAX_LIST), default=20, show_default=True,
    help="How many of its latest events to show.",
)  # fmt: skip
@json_option()
@click.pass_context
@handle_errors
def trigger_show(ctx: click.Context, name: str, count: int, as_json: bool) -> None:
    """One trigger: its declaration, subscriptions, figures and latest events."""

    async def main() -> tuple[TriggerView, list[TriggerEvent]]:
        async with open_database(settings_of(ctx)) as database, database.connection() as conn:
            view = await service.get_trigger(conn, name)
            events = await store.latest_trigger_events(conn, name, limit=count) if count else []
            return view, events

    view, events = run_async(main())
    if as_json:
        output.print_json({**view.to_json(), "events": [e.to_json() for e in events]})
        return
    shown = view.to_json()
    click.echo(
        f"trigger {view.name}  {view.type}  {output.status_text(view.status)}  "
        f"(source {view.source}, version {view.version})"
    )
    for label, value in (
        ("name shown", view.display_name),
        ("description", view.description),
        ("declared in", view.declared_at),
        (
            "retired",
            f"{_time(view.retired_at)}: {view.retired_reason}" if view.retired_at else None,
        ),
    ):
        if value:
            click.echo(f"{label}: {value}")
    click.echo(f"config: {output.compact(shown['config'], 400)}")
    click.echo(f"fires: {view.total_fires}, last {_time(view.last_fired_at)}")
    click.echo("subscriptions:")
    for subscription in view.subscriptions:
        click.echo(f"  {subscription.flow}  {subscription.mode}  ({subscription.source})")
    if not view.subscriptions:
        click.echo("  none")
    if events:
        click.echo("events:")
        for event in events:
            click.echo(f"  {event.id:>8}  {_time(event.ts)}  {event.type:<22} {_detail(event)}")


@trigger.command("fire")
@click.argument("name")
@input_option("The fire's")
@click.option(
    "--flow", "flows", multiple=True, metavar="FLOW",
    help="Start runs only in this subscribed flow (manual subscriptions too); repeatable.",
)  # fmt: skip
@click.option("--delivery-key", metavar="KEY", help="A second fire with this key starts nothing.")
@json_option()
@click.pass_context
@handle_errors
def trigger_fire(
    ctx: click.Context,
    name: str,
    input_text: str | None,
    flows: tuple[str, ...],
    delivery_key: str | None,
    as_json: bool,
) -> None:
    """Fire a trigger: a run in each flow subscribed in mode auto (or in each --flow)."""
    data = parse_input(input_text)
    settings = settings_of(ctx)

    async def main() -> Fired:
        async with open_database(settings) as database:
            async with database.transaction() as conn:
                fired = await service.fire_trigger(
                    conn,
                    name,
                    data,
                    source=CLI_SOURCE,
                    delivery_key=delivery_key,
                    flows=list(flows) or None,
                )
            await _note_unserved(database, fired, settings.host_stale_after)
            return fired

    fired = _with_field_errors(lambda: run_async(main()))
    if as_json:
        output.print_json(fired.to_json())
        return
    _print_fired(fired)


@trigger.command("replay")
@click.argument("name")
@click.option("--last", type=click.IntRange(1, MAX_REPLAY), help="Replay the last N fires.")
@click.option("--since", metavar="TIME", help="Replay fires from this ISO 8601 time on.")
@click.option("--until", metavar="TIME", help="... and before this one.")
@click.option(
    "--flow", "flows", multiple=True, metavar="FLOW",
    help="Start runs only in this subscribed flow (manual subscriptions too); repeatable.",
)  # fmt: skip
@json_option()
@click.pass_context
@handle_errors
def trigger_replay(
    ctx: click.Context,
    name: str,
    last: int | None,
    since: str | None,
    until: str | None,
    flows: tuple[str, ...],
    as_json: bool,
) -> None:
    """Fire a trigger's recorded fires again (their inputs), as new runs."""
    settings = settings_of(ctx)
    start, end = _moment(since, "--since"), _moment(until, "--until")

    async def main() -> Replayed:
        async with open_database(settings) as database:
            async with database.transaction() as conn:
                replayed = await service.replay_trigger(
                    conn, name, last=last, since=start, until=end, flows=list(flows) or None
                )
            for fired in replayed.fires[:1]:
                await _note_unserved(database, fired, settings.host_stale_after)
            return replayed

    replayed = _with_field_errors(lambda: run_async(main()))
    if as_json:
        output.print_json(replayed.to_json())
        return
    click.echo(f"trigger {name}: {len(replayed.fires)} fires replayed")
    for fired in replayed.fires:
        _print_fired(fired)


@trigger.command("retire")
@click.argument("name")
@click.option("--reason", help="Why, recorded in its trigger.retired event.")
@json_option()
@click.pass_context
@handle_errors
def trigger_retire(ctx: click.Context, name: str, reason: str | None, as_json: bool) -> None:
    """Retire a trigger: it fires no more. A trigger a function config declares is active
    again at the next host start, unless the config drops it."""

    async def main() -> TriggerView:
        async with open_database(settings_of(ctx)) as database, database.transaction() as conn:
            return await service.retire_trigger(
                conn, name, reason=reason or "retired from the command line"
            )

    view = run_async(main())
    if as_json:
        output.print_json(view.to_json())
        return
    click.echo(f"trigger {view.name} retired ({view.retired_reason})")


def _print_fired(fired: Fired) -> None:
    if fired.duplicate:
        click.echo(
            f"trigger {fired.trigger}: delivery seen before (event {fired.event_id}); "
            "nothing started"
        )
    else:
        click.echo(f"trigger {fired.trigger} fired (event {fired.event_id})")
    for run in fired.runs:
        click.echo(f"  run {run.run_id} started: flow {run.flow}")
    for skipped in fired.skipped:
        click.echo(f"  flow {skipped.flow} skipped: {skipped.reason}")
    if not fired.runs and not fired.skipped:
        click.echo("  no flow is subscribed in mode auto: nothing started")


async def _note_unserved(database: Database, fired: Fired, stale_after: float) -> None:
    """Say so when no live host serves a flow a run was started in: nothing would run it."""
    async with database.connection() as conn:
        for run in fired.runs:
            row = await reads.get_run(conn, run.run_id)
            if not await reads.hosts_serving(conn, run.flow, row["definition_hash"], stale_after):
                click.echo(
                    f"note: no running host serves flow {run.flow!r}; start one (flowhost host) "
                    "to run it",
                    err=True,
                )


def _with_field_errors(call: Any) -> Any:
    """A fire's input refused by the trigger's schema: every problem, one per line."""
    try:
        return call()
    except TriggerInputError as exc:
        click.echo(f"flowhost: error: {exc.message}", err=True)
        for error in exc.errors:
            click.echo(f"  {error['pointer'] or '/'}: {error['message']}", err=True)
        sys.exit(exit_codes.USAGE)


def _moment(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time; without a zone, the local one."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"{option} must be an ISO 8601 time (got {text!r})") from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _detail(event: TriggerEvent) -> str:
    data = event.data
    match event.type:
        case "trigger.fired":
            runs = ", ".join(f"{r['flow']} {r['run_id'][:8]}" for r in data.get("runs", ()))
            replay = f" (replay of {data['replay_of']})" if "replay_of" in data else ""
            return f"{data.get('source')}{replay}: {runs or 'no runs'}"
        case "subscription.added" | "subscription.removed":
            return f"{data.get('flow')} ({data.get('mode')}, {data.get('source')})"
        case "trigger.updated":
            return ", ".join(sorted(data.get("changes", {})))
        case "trigger.retired":
            return str(data.get("reason"))
        case "trigger.replayed":
            return f"{len(data.get('replayed', ()))} fires"
        case "trigger.chain_stopped" | "trigger.fire_failed":
            error = data.get("error") or {}
            return str(data.get("message") or error.get("message") or "")
        case _:
            return ""


__all__: Sequence[str] = ["trigger"]
