"""The run index, step rows and step figures: the projections written beside the events.

Functions here run on a connection the caller owns, usually inside its transaction. Batches
travel as one JSON document each (`jsonb_to_recordset`), which costs one JSON dump instead of
adapting a Postgres array per column. Flow statistics follow the run rows by themselves (a
trigger, see the migration `run_health`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Connection, Deferred
from flowhost.db.json_codec import dumps_text
from flowhost.db.queries import QUERIES
from flowhost.store.events import (
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_RETRY,
    STEP_SKIPPED,
    NewEvent,
    append_events,
)
from flowhost_worker.awaits import Awaited


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """A step attempt this host now runs."""

    input: Any
    max_attempts: int
    # How the step's await_before resolved (its `ctx.awaited`); None without one.
    awaited: Awaited | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WrongDefinition:
    """A job this host did not claim: its run started on another definition of the flow."""

    definition_hash: str
    # Whether a live host serves that definition (else the run is parked).
    served: bool


@dataclasses.dataclass(frozen=True, slots=True)
class LockedRun:
    status: str
    emitted: dict[str, Any]
    priority: int = 0
    concurrency_key: str | None = None


@dataclasses.dataclass(slots=True)
class CompletedSteps:
    """What `complete_steps` found for one run."""

    # Every scheduled step of the run -> its status, the ones completed now included.
    statuses: dict[str, str] = dataclasses.field(default_factory=dict)
    # Steps completed by this batch -> (started_at, finished_at).
    times: dict[str, tuple[datetime, datetime]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class NewStep:
    run_id: uuid.UUID
    name: str
    status: str  # "queued", "awaiting" (an await before it) or "skipped"
    max_attempts: int = 1
    input: Any = None
    # The step has a concurrency limit (flowhost.engine.scheduling).
    flow_control: bool = False

    def to_json(self) -> dict[str, Any]:
        attempt = 0 if self.status == "skipped" else 1
        return {
            "run_id": str(self.run_id),
            "name": self.name,
            "status": self.status,
            "attempt": attempt,
            "max_attempts": self.max_attempts,
            "input": self.input,
            "flow_control": self.flow_control,
        }


@dataclasses.dataclass(slots=True)
class Progress:
    """What one step attempt changes in its run, written by `record_progress`."""

    run_id: uuid.UUID
    status: str
    emitted: dict[str, Any]
    finishing: bool
    completed: int = 0
    steps: list[NewStep] = dataclasses.field(default_factory=list)
    events: list[NewEvent] = dataclasses.field(default_factory=list)
    result: Any = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "status": self.status,
            "emitted": self.emitted,
            "completed": self.completed,
            "finishing": self.finishing,
            "result": self.result,
            "error": self.error,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class NewRun:
    id: uuid.UUID
    input: Any
    # The JSON text of the input's value at the flow's concurrency key (None: no key).
    concurrency_key: str | None = None
    # This run's own additions to its flow.started event (a trigger fire's id, say).
    started_data: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RunStart:
    """How runs start: `queued` (waiting for a slot or for `start_at`) or `running`."""

    status: str = "running"
    priority: int = 0
    # Seconds from now until a delayed start, or the moment of it (start_at wins).
    delay: float = 0.0
    start_at: datetime | None = None
    # The run's end must release slots or a debounce key; its entry step has a limit.
    flow_control: bool = False
    entry_flow_control: bool = False


async def start_runs(
    conn: Connection,
    *,
    flow: str,
    definition_hash: str,
    step_count: int,
    entry: str | None,
    max_attempts: int,
    runs: Sequence[NewRun],
    parent_run_id: uuid.UUID | None = None,
    started_data: Mapping[str, Any] | None = None,
    start: RunStart | None = None,
) -> datetime | None:
    """Create runs: rows, flow.started events (their data plus `started_data`), statistics,
    and the entry step's row unless `entry` is None. Returns when a delayed start is due (None
    when they start now)."""
    start = start or RunStart()
    row = await (
        await conn.execute(
            QUERIES["start_runs"],
            {
                "runs": dumps_text(
                    [
                        {
                            "id": str(run.id),
                            "input": run.input,
                            "key": run.concurrency_key,
                            "started": run.started_data,
                        }
                        for run in runs
                    ]
                ),
                "flow": flow,
                "definition_hash": definition_hash,
                "step_count": step_count,
                "entry": entry,
                "max_attempts": max_attempts,
                "parent_run_id": parent_run_id,
                "started_data": dumps_text(dict(started_data or {})),
                "status": start.status,
                "priority": start.priority,
                "delay": start.delay,
                "start_at": start.start_at,
                "flow_control": start.flow_control,
                "entry_flow_control": start.entry_flow_control,
            },
        )
    ).fetchone()
    assert row is not None, "start_runs always returns one row"
    start_at: datetime | None = row["start_at"]
    return start_at


JobKey = tuple[uuid.UUID, str, int]  # run, step, attempt
# A job to claim, with the hash of the flow definition the claiming host serves.
ClaimRequest = tuple[uuid.UUID, str, int, str]


async def claim_steps(
    conn: Connection, jobs: Sequence[ClaimRequest], *, stale_after: float
) -> dict[JobKey, Claim | WrongDefinition]:
    """Mark attempts running; the stale ones (finished, superseded, run over) are left out.

    A job whose run started on another definition than the host's is not claimed: it maps to
    WrongDefinition (`stale_after`: seconds after which a silent host no longer counts)."""
    rows = await (
        await conn.execute(
            QUERIES["claim_steps"],
            {
                # Arrays, not one JSON document: the planner knows how many rows `unnest`
                # yields, where it takes a JSON recordset for 100 and scans `steps` whole.
                "run_ids": [run_id for run_id, _, _, _ in jobs],
                "steps": [step for _, step, _, _ in jobs],
                "attempts": [attempt for _, _, attempt, _ in jobs],
                "hashes": [hash_ for _, _, _, hash_ in jobs],
                "stale_after": stale_after,
            },
        )
    ).fetchall()
    return {
        (row["run_id"], row["name"], row["attempt"]): (
            Claim(row["input"], row["max_attempts"], _awaited(row.get("awaited")))
            if row["claimed"]
            else WrongDefinition(row["definition_hash"], bool(row["served"]))
        )
        for row in rows
    }


def _awaited(value: Any) -> Awaited | None:
    """The `awaited` column of a claim, `{"type", "data"}` (read when the query returns it)."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    return Awaited(value["type"], value.get("data"))


async def lock_runs(conn: Connection, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, LockedRun]:
    """Lock the runs' rows until the transaction ends: one batch ending steps of a run at once."""
    return await (await send_lock_runs(conn, run_ids)).result()


async def send_lock_runs(
    conn: Connection, run_ids: Sequence[uuid.UUID]
) -> Deferred[dict[uuid.UUID, LockedRun]]:
    """`lock_runs`, read later (see `Deferred`)."""
    cursor = await conn.execute(QUERIES["lock_runs"], {"run_ids": sorted(set(run_ids))})
    return Deferred(cursor, _locked_runs)


def _locked_runs(rows: list[dict[str, Any]]) -> dict[uuid.UUID, LockedRun]:
    return {
        row["id"]: LockedRun(row["status"], row["emitted"], row["priority"], row["concurrency_key"])
        for row in rows
    }


async def send_complete_steps(
    conn: Connection, results: Sequence[tuple[JobKey, Any]], holding: Collection[JobKey] = ()
) -> Deferred[dict[uuid.UUID, CompletedSteps]]:
    """Record results of running attempts; an attempt no longer running is not in `times`.
    Steps in `holding` (an await after them) become `awaiting` instead of `completed`.
    Read later (see `Deferred`): send it after `send_lock_runs` of the same runs."""
    cursor = await conn.execute(
        QUERIES["complete_steps"],
        {
            "steps": dumps_text(
                [
                    {
                        "run_id": str(run_id),
                        "step": step,
                        "attempt": attempt,
                        "result": result,
                        "status": "awaiting" if (run_id, step, attempt) in holding else "completed",
                    }
                    for (run_id, step, attempt), result in results
                ]
            )
        },
    )
    return Deferred(cursor, _completed_steps)


def _completed_steps(rows: list[dict[str, Any]]) -> dict[uuid.UUID, CompletedSteps]:
    found: dict[uuid.UUID, CompletedSteps] = {}
    for row in rows:
        run = found.setdefault(row["run_id"], CompletedSteps())
        run.statuses[row["name"]] = row["status"]
        if row["finished_at"] is not None:
            run.times[row["name"]] = (row["started_at"], row["finished_at"])
    return found


async def retry_step(
    conn: Connection, run_id: uuid.UUID, step: str, attempt: int, error: dict[str, Any]
) -> int | None:
    """Queue the next attempt; returns its number, None if this attempt is not running."""
    row = await (
        await conn.execute(
            QUERIES["retry_step"],
            {"run_id": run_id, "step": step, "attempt": attempt, "error": Jsonb(error)},
        )
    ).fetchone()
    return None if row is None else int(row["attempt"])


async def fail_step(
    conn: Connection, run_id: uuid.UUID, step: str, attempt: int, error: dict[str, Any]
) -> datetime | None:
    """Fail a running attempt for good; returns when it finished, None if it was not running."""
    row = await (
        await conn.execute(
            QUERIES["fail_step"],
            {"run_id": run_id, "step": step, "attempt": attempt, "error": Jsonb(error)},
        )
    ).fetchone()
    return None if row is None else row["finished_at"]


# The step events that step_stats counts, and the figure each adds to.
STEP_FIGURES = {
    STEP_COMPLETED: "completed",
    STEP_FAILED: "failed",
    STEP_RETRY: "retried",
    STEP_SKIPPED: "skipped",
}


def step_figures(events: Sequence[NewEvent]) -> list[dict[str, Any]]:
    """What `events` add to step_stats: one item per step event, with the duration and end
    time the event records (so that a rebuild from the events finds the same numbers)."""
    figures = []
    for event in events:
        figure = STEP_FIGURES.get(event.type)
        if figure is None or event.step is None:
            continue
        item: dict[str, Any] = {
            "run_id": str(event.run_id),
            "step": event.step,
            "completed": 0,
            "failed": 0,
            "retried": 0,
            "skipped": 0,
            "duration_ms": event.data.get("duration_ms") if figure == "completed" else None,
            "finished_at": event.data.get("finished_at"),
        }
        item[figure] = 1
        figures.append(item)
    return figures


async def record_progress(
    conn: Connection, changes: Sequence[Progress]
) -> list[tuple[uuid.UUID, str]]:
    """Write new steps, events, run rows and the step figures of the step events; returns the
    (run, step) pairs newly queued (a step already scheduled in its run is left alone)."""
    events = [event for change in changes for event in change.events]
    await append_events(conn, events)
    row = await (
        await conn.execute(
            QUERIES["record_progress"],
            {
                "runs": dumps_text([change.to_json() for change in changes]),
                "steps": dumps_text(
                    [step.to_json() for change in changes for step in change.steps]
                ),
                "figures": dumps_text(step_figures(events)),
            },
        )
    ).fetchone()
    assert row is not None, "record_progress always returns one row"
    return [(uuid.UUID(item["run_id"]), item["name"]) for item in row["queued"]]


@dataclasses.dataclass(frozen=True, slots=True)
class CanceledStep:
    run_id: uuid.UUID
    name: str
    attempt: int
    previous: str  # the status it had: queued, running or awaiting


async def cancel_steps(conn: Connection, run_ids: Sequence[uuid.UUID]) -> list[CanceledStep]:
    """End the in-flight steps of runs that are over (locked beforehand); hosts running one of
    their attempts are told at commit, and stop it."""
    rows = await (
        await conn.execute(QUERIES["cancel_steps"], {"run_ids": sorted(set(run_ids))})
    ).fetchall()
    return [
        CanceledStep(row["run_id"], row["name"], row["attempt"], row["previous"]) for row in rows
    ]


@dataclasses.dataclass(frozen=True, slots=True)
class StepRow:
    name: str
    status: str
    attempt: int
    max_attempts: int
    input: Any
    result: Any
    error: dict[str, Any] | None
    finished_at: datetime | None


async def step_rows(conn: Connection, run_id: uuid.UUID) -> dict[str, StepRow]:
    """Every scheduled step of a run, by name."""
    rows = await (await conn.execute(QUERIES["step_rows"], {"run_id": run_id})).fetchall()
    return {row["name"]: StepRow(**row) for row in rows}
