"""`flowhost flows list|show`: the project's flows (as discovery finds them in functions/) with
what the database knows of them: live hosts serving their definition, triggers, runs."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from typing import Any

import click

from flowhost.cli import flow_graph, output
from flowhost.cli.common import handle_errors, json_option, run_async, settings_of
from flowhost.cli.serving import print_problems
from flowhost.db.database import Connection
from flowhost.engine.definitions import FlowDefinition
from flowhost.project import Project, open_project
from flowhost.store import reads, statistics
from flowhost.triggers import service

RUN_COUNTS = (
    "total", "queued", "running", "awaiting", "completed", "failed", "canceled", "stalled"
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class FlowFacts:
    """A flow's definition and what the database says of it now."""

    flow: FlowDefinition
    hosts: int
    runs: dict[str, int]
    triggers: list[dict[str, str]]  # {name, type, mode} of the active triggers starting it

    @property
    def runtimes(self) -> list[str]:
        return sorted({step.runtime for step in self.flow.steps.values()})

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.flow.name,
            "entry": self.flow.entry,
            "definition_hash": self.flow.hash,
            "step_count": len(self.flow.steps),
            "steps": sorted(self.flow.steps),
            "runtimes": self.runtimes,
            "triggers": self.triggers,
            "hosts": self.hosts,
            "runs": self.runs,
        }


async def _facts(project: Project, names: list[str]) -> list[FlowFacts]:
    stale_after = project.settings.host_stale_after
    async with project.database.connection() as conn:
        counts = {row["flow"]: row for row in await statistics.flow_statistics(conn)}
        triggers = await _triggers_by_flow(conn)
        found = []
        for name in names:
            flow = project.catalog.flow(name)
            row = counts.get(name) or {}
            found.append(
                FlowFacts(
                    flow,
                    await reads.hosts_serving(conn, name, flow.hash, stale_after=stale_after),
                    {key: int(row.get(key) or 0) for key in RUN_COUNTS},
                    triggers.get(name, []),
                )
            )
    return found


async def _triggers_by_flow(conn: Connection) -> dict[str, list[dict[str, str]]]:
    """Flow -> the active triggers subscribed to it, by name (every page of the registry)."""
    found: dict[str, list[dict[str, str]]] = {}
    after = None
    while True:
        page = await service.list_triggers(
            conn, status="active", after=after, limit=service.MAX_LIST
        )
        for view in page:
            for subscription in view.subscriptions:
                found.setdefault(subscription.flow, []).append(
                    {"name": view.name, "type": view.type, "mode": subscription.mode}
                )
        if len(page) < service.MAX_LIST:
            return found
        after = page[-1].name


@click.group("flows")
def flows() -> None:
    """The project's flows: steps, graph, hosts serving them, triggers and runs."""


@flows.command("list")
@json_option()
@click.pass_context
@handle_errors
def flows_list(ctx: click.Context, as_json: bool) -> None:
    """Every flow of the project: its steps, runtimes, triggers, the live hosts serving its
    definition, and its runs (invalid flows are reported on stderr)."""

    async def main() -> tuple[list[FlowFacts], Project]:
        async with open_project(settings_of(ctx)) as project:
            return await _facts(project, sorted(project.catalog.flows)), project

    found, project = run_async(main())
    if as_json:
        output.print_json(
            {
                "flows": [facts.to_json() for facts in found],
                "problems": [dataclasses.asdict(p) for p in project.catalog.problems],
            }
        )
        return
    print_problems(project)
    rows = [
        [
            facts.flow.name,
            str(len(facts.flow.steps)),
            ", ".join(facts.runtimes),
            ", ".join(t["name"] for t in facts.triggers) or "-",
            _hosts(facts.hosts),
            str(facts.runs["total"]),
            str(sum(facts.runs[s] for s in reads.LIVE_STATUSES)),
            str(facts.runs["completed"]),
            str(facts.runs["failed"]),
        ]
        for facts in found
    ]
    headers = ["FLOW", "STEPS", "RUNTIMES", "TRIGGERS", "HOSTS", "RUNS", "LIVE", "DONE", "FAILED"]
    click.echo(output.table(rows, headers))


def _hosts(count: int) -> str:
    """Live hosts serving a definition: none is worth a colour (its runs would wait)."""
    if not output.colour_enabled():
        return str(count)
    return click.style(str(count), fg="green" if count else "yellow")


@flows.command("show")
@click.argument("flow")
@click.option(
    "--layout",
    type=click.Choice(["auto", "graph", "list"]),
    default="auto",
    show_default=True,
    help="graph: boxes and arrows; list: layer by layer; auto: the graph if it fits the "
    "terminal's width.",
)
@click.option(
    "--ascii", "ascii_only", is_flag=True,
    help="Plain ASCII (the default when stdout is not UTF-8).",
)  # fmt: skip
@json_option()
@click.pass_context
@handle_errors
def flows_show(ctx: click.Context, flow: str, layout: str, ascii_only: bool, as_json: bool) -> None:
    """One flow: its step graph drawn in layers (what each step waits for, its runtime and
    awaits), the hosts serving it, its triggers and runs."""

    async def main() -> FlowFacts:
        async with open_project(settings_of(ctx)) as project:
            return (await _facts(project, [flow]))[0]

    facts = run_async(main())
    if as_json:
        output.print_json(_detail_json(facts))
        return
    charset = (
        flow_graph.UNICODE if output.unicode_enabled() and not ascii_only else flow_graph.ASCII
    )
    definition = facts.flow
    click.echo(
        f"flow {definition.name}  definition {definition.hash}  entry {definition.entry}  "
        f"{len(definition.steps)} steps"
    )
    runs = facts.runs
    click.echo(
        f"hosts serving it: {_hosts(facts.hosts)}  runs: {runs['total']} "
        f"({runs['completed']} completed, {runs['failed']} failed, "
        f"{sum(runs[s] for s in reads.LIVE_STATUSES)} live)"
    )
    triggers = ", ".join(f"{t['name']} ({t['type']}, {t['mode']})" for t in facts.triggers)
    click.echo(f"triggers: {triggers or 'none'}")
    limits = _limits(definition)
    if limits:
        click.echo(f"limits: {limits}")
    click.echo("")
    click.echo("\n".join(_drawing(definition, layout, charset)))


def _drawing(flow: FlowDefinition, layout: str, charset: flow_graph.Charset) -> list[str]:
    if layout == "list":
        return flow_graph.list_lines(flow, charset)
    drawn = flow_graph.graph_lines(flow, charset)
    # The terminal's width (COLUMNS first); none when piped: a file takes any width.
    width = shutil.get_terminal_size((0, 0)).columns
    if layout == "auto" and width and max(map(len, drawn)) > width:
        return flow_graph.list_lines(flow, charset)
    return drawn


def _limits(flow: FlowDefinition) -> str:
    limits = flow.limits
    parts = [
        f"{name} {value}"
        for name, value in (
            ("max_runs", limits.max_runs),
            ("concurrency_key", limits.concurrency_key),
            ("key_concurrency", limits.key_concurrency),
        )
        if value is not None
    ]
    parts += [f"{step} at most {count} at once" for step, count in limits.step_limits.items()]
    return ", ".join(parts)


def _detail_json(facts: FlowFacts) -> dict[str, Any]:
    flow = facts.flow
    rank = flow_graph.ranks(flow)
    preds = flow_graph.predecessors(flow)
    edges = [
        {
            "from": source,
            "to": target,
            "events": sorted(set(flow.steps[source].emits) & set(flow.steps[target].subscribes)),
        }
        for target in sorted(flow.steps)
        for source in preds[target]
    ]
    return {
        **facts.to_json(),
        "limits": flow.limits.to_json()
        | {"concurrency_key": flow.limits.concurrency_key, "priority": flow.limits.priority},
        "layers": [
            sorted(n for n in flow.steps if rank[n] == layer)
            for layer in range(max(rank.values()) + 1)
        ],
        "steps": [_step_json(flow, name, rank) for name in sorted(flow.steps)],
        "edges": edges,
    }


def _step_json(flow: FlowDefinition, name: str, rank: Mapping[str, int]) -> dict[str, Any]:
    step = flow.steps[name]
    return {
        "name": name,
        "layer": rank[name],
        "entry": name == flow.entry,
        "runtime": step.runtime,
        "isolation": step.isolation,
        "subscribes": list(step.subscribes),
        "emits": list(step.emits),
        "attempts": step.attempts,
        "timeout": step.timeout,
        "awaits": {position: a.to_config() for position, a in step.awaits().items()},
        "file": step.file,
        "line": step.line,
    }
