"""`/api/flows`: the flows this project defines, with their steps, definition hash, live hosts
and statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from flowhost.api.models import (
    Durations,
    FlowDetail,
    FlowList,
    FlowProblem,
    FlowStatistics,
    FlowSummary,
    StepInfo,
    StepStatistics,
)
from flowhost.api.routes.common import NOT_FOUND, connection, project_of
from flowhost.db.database import Connection
from flowhost.engine.definitions import FlowDefinition
from flowhost.store import reads, statistics

router = APIRouter(prefix="/api/flows", tags=["flows"])


@router.get("", response_model=FlowList, summary="Every flow, with its statistics")
async def list_flows(request: Request) -> FlowList:
    project = project_of(request)
    flows = project.catalog.flows
    root = project.catalog.functions_dir
    async with connection(request) as conn:
        counts = {row["flow"]: row for row in await statistics.flow_statistics(conn)}
        items = [
            await _summary(conn, flow, counts.get(name), project.settings.host_stale_after, root)
            for name, flow in sorted(flows.items())
        ]
    problems = [
        FlowProblem(file=relative(p.file, root), line=p.line, message=p.message, flow=p.flow)
        for p in project.catalog.problems
    ]
    return FlowList(items=items, problems=problems)


@router.get(
    "/{name}",
    response_model=FlowDetail,
    summary="One flow: definition, limits, statistics of its runs and steps",
    responses=NOT_FOUND,
)
async def get_flow(request: Request, name: str) -> FlowDetail:
    project = project_of(request)
    flow = project.catalog.flow(name)
    async with connection(request) as conn:
        found = await statistics.flow_statistics(conn, name)
        counts = found[0] if found else None
        summary = await _summary(
            conn, flow, counts, project.settings.host_stale_after, project.catalog.functions_dir
        )
        durations = await statistics.duration_percentiles(conn, name)
        steps = await statistics.step_statistics(conn, name)
    return FlowDetail(
        **summary.model_dump(),
        limits=flow.limits.to_json()
        | {"concurrency_key": flow.limits.concurrency_key, "priority": flow.limits.priority},
        durations=Durations(**durations),
        step_statistics=[_step_statistics(row) for row in steps],
    )


def relative(path: str, root: Path) -> str:
    """A function file's path in the functions folder (as the project names it)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


async def _summary(
    conn: Connection,
    flow: FlowDefinition,
    counts: dict[str, Any] | None,
    stale_after: float,
    root: Path,
) -> FlowSummary:
    hosts = await reads.hosts_serving(conn, flow.name, flow.hash, stale_after=stale_after)
    return FlowSummary(
        name=flow.name,
        entry=flow.entry,
        definition_hash=flow.hash,
        steps=[
            StepInfo(
                name=step.name,
                entry=step.entry,
                subscribes=list(step.subscribes),
                emits=list(step.emits),
                runtime=step.runtime,
                file=relative(step.file, root),
                line=step.line,
                config=step.config(),
            )
            for _, step in sorted(flow.steps.items())
        ],
        layers=[list(layer) for layer in flow.layers],
        hosts=hosts,
        statistics=_flow_statistics(counts),
    )


def _flow_statistics(row: dict[str, Any] | None) -> FlowStatistics:
    if row is None:
        return FlowStatistics()
    fields = {k: v for k, v in row.items() if k in FlowStatistics.model_fields}
    completed = row["completed"]
    mean = row["total_duration_ms"] / completed if completed else None
    return FlowStatistics(**fields, mean_duration_ms=mean)


def _step_statistics(row: dict[str, Any]) -> StepStatistics:
    completed = row["completed"]
    return StepStatistics(
        step=row["step"],
        completed=completed,
        failed=row["failed"],
        retried=row["retried"],
        skipped=row["skipped"],
        total_duration_ms=float(row["total_duration_ms"]),
        max_duration_ms=float(row["max_duration_ms"]),
        mean_duration_ms=float(row["total_duration_ms"]) / completed if completed else None,
        last_finished_at=row["last_finished_at"],
    )
