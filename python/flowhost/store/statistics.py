"""Flow and step statistics: reading them, and rebuilding them from the event log.

`flow_stats` follows the run rows (a trigger counts every insert, delete and change of status);
`step_stats` follows the step events that `record_progress` appends. The event log is the
source of truth: `rebuild_statistics` recomputes both from it alone, and tells where the kept
numbers differ.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.store.events import (
    FLOW_ADMITTED,
    FLOW_CANCELED,
    FLOW_COMPLETED,
    FLOW_FAILED,
    FLOW_RETRIED,
    FLOW_STALLED,
    FLOW_STARTED,
    FLOW_WAITING,
)
from flowhost.store.runs import STEP_FIGURES

# The run status each lifecycle event leaves its run in; a run counts under the status of its
# last such event. Whatever starts, ends or reopens a run appends one of these (a part of
# flowhost that adds such a change adds its event here).
RUN_STATUS_EVENTS: dict[str, str] = {
    FLOW_STARTED: "running",
    FLOW_COMPLETED: "completed",
    FLOW_FAILED: "failed",
    FLOW_CANCELED: "canceled",
    FLOW_STALLED: "stalled",
    FLOW_RETRIED: "running",
    # Flow control: a run waits (for a slot or its start time), then is admitted. A run
    # admitted at once has neither event.
    FLOW_WAITING: "queued",
    FLOW_ADMITTED: "running",
}
# A running run is `awaiting` while one of the awaits opened since its last lifecycle event is
# not closed (the await engine's events).
AWAIT_OPENED_EVENTS = ("await.registered",)
AWAIT_CLOSED_EVENTS = ("await.resolved", "await.timed_out")

FLOW_COLUMNS = (
    "total",
    "queued",
    "running",
    "awaiting",
    "completed",
    "failed",
    "canceled",
    "stalled",
    "total_duration_ms",
    "max_duration_ms",
    "last_run_at",
    "last_completed_at",
)
STEP_COLUMNS = (
    "completed",
    "failed",
    "retried",
    "skipped",
    "total_duration_ms",
    "max_duration_ms",
    "last_finished_at",
)
# Percentiles of a flow's durations are taken over its latest completed runs.
PERCENTILE_WINDOW = 10_000


async def flow_statistics(conn: Connection, flow: str | None = None) -> list[dict[str, Any]]:
    """flow_stats rows, of one flow or all."""
    return await (await conn.execute(QUERIES["flow_statistics"], {"flow": flow})).fetchall()


async def step_statistics(conn: Connection, flow: str | None = None) -> list[dict[str, Any]]:
    """step_stats rows, of one flow or all."""
    return await (await conn.execute(QUERIES["step_statistics"], {"flow": flow})).fetchall()


async def duration_percentiles(
    conn: Connection, flow: str, *, last: int = PERCENTILE_WINDOW
) -> dict[str, Any]:
    """{"runs", "p50", "p95"}: durations (ms) of the latest `last` completed runs of `flow`;
    p50 and p95 are None without any."""
    row = await (
        await conn.execute(QUERIES["flow_duration_percentiles"], {"flow": flow, "last": last})
    ).fetchone()
    assert row is not None, "an aggregate returns one row"
    return {"runs": int(row["runs"]), "p50": row["p50"], "p95": row["p95"]}


@dataclasses.dataclass(frozen=True, slots=True)
class Difference:
    """A number kept in `table` that differs from the one rebuilt from the events."""

    table: str  # "flow_stats" or "step_stats"
    key: str  # the flow, or "flow/step"
    column: str
    kept: Any
    rebuilt: Any

    def __str__(self) -> str:
        return f"{self.table} {self.key} {self.column}: kept {self.kept}, events say {self.rebuilt}"


@dataclasses.dataclass(frozen=True, slots=True)
class Rebuild:
    flows: int
    steps: int
    differences: list[Difference]
    # False for a check: the kept numbers were compared, not replaced.
    written: bool


async def rebuild_statistics(conn: Connection, *, write: bool = True) -> Rebuild:
    """Recompute flow_stats and step_stats from the event log, compare them with the kept ones
    and (`write`) replace them. Runs its own transaction on `conn` (an autocommit connection).

    Writing holds off the writers of the statistics (ending steps, starting runs) while it
    counts, so that no change is counted twice or lost. A check needs no lock: it reads both
    sides in one snapshot."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if write:
            # Before the snapshot is taken (at the next query): it then holds every change
            # committed before the lock, and none of those that wait for it.
            await conn.execute(QUERIES["lock_statistics"])
        flows = await (
            await conn.execute(
                QUERIES["flow_statistics_from_events"],
                {
                    "statuses": json.dumps(RUN_STATUS_EVENTS),
                    "await_opened": list(AWAIT_OPENED_EVENTS),
                    "await_closed": list(AWAIT_CLOSED_EVENTS),
                },
            )
        ).fetchall()
        steps = await (
            await conn.execute(
                QUERIES["step_statistics_from_events"], {"figures": json.dumps(STEP_FIGURES)}
            )
        ).fetchall()
        differences = _compare(
            "flow_stats", await flow_statistics(conn), flows, ("flow",), FLOW_COLUMNS
        ) + _compare(
            "step_stats", await step_statistics(conn), steps, ("flow", "step"), STEP_COLUMNS
        )
        if write:
            await conn.execute(QUERIES["replace_flow_statistics"], {"rows": _json(flows)})
            await conn.execute(QUERIES["replace_step_statistics"], {"rows": _json(steps)})
    return Rebuild(len(flows), len(steps), differences, write)


def _compare(
    table: str,
    kept: list[dict[str, Any]],
    rebuilt: list[dict[str, Any]],
    key: tuple[str, ...],
    columns: tuple[str, ...],
) -> list[Difference]:
    kept_by = {tuple(row[k] for k in key): row for row in kept}
    rebuilt_by = {tuple(row[k] for k in key): row for row in rebuilt}
    differences = []
    for name in sorted(kept_by.keys() | rebuilt_by.keys()):
        old, new = kept_by.get(name, {}), rebuilt_by.get(name, {})
        for column in columns:
            before, after = _normal(old.get(column)), _normal(new.get(column))
            if before != after:
                differences.append(Difference(table, "/".join(name), column, before, after))
    return differences


def _normal(value: Any) -> Any:
    """Absent and zero agree (1.5 and 1.500 compare equal anyway)."""
    return None if value is None or value == 0 else value


def _json(rows: list[dict[str, Any]]) -> str:
    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        raise TypeError(f"cannot encode {type(value).__name__}")

    return json.dumps(rows, default=encode)
