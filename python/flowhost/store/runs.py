"""The run index, step rows and flow statistics: the projections written beside the events.

Functions here run on a connection the caller owns, usually inside its transaction. Batches
travel as one JSON document each (`jsonb_to_recordset`), which costs one `json.dumps` instead of
adapting a Postgres array per column.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.store.events import NewEvent


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """A step attempt this host now runs."""

    input: Any
    max_attempts: int
    flow: str
    definition_hash: str


@dataclasses.dataclass(frozen=True, slots=True)
class LockedRun:
    status: str
    emitted: dict[str, Any]
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class CompletedStep:
    started_at: datetime
    finished_at: datetime
    # Every scheduled step of the run -> its status, this one included as completed.
    statuses: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class NewStep:
    name: str
    status: str  # "queued" or "skipped"
    max_attempts: int = 1
    input: Any = None

    def to_json(self) -> dict[str, Any]:
        attempt = 1 if self.status == "queued" else 0
        return {
            "name": self.name,
            "status": self.status,
            "attempt": attempt,
            "max_attempts": self.max_attempts,
            "input": self.input,
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


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def start_runs(
    conn: Connection,
    *,
    flow: str,
    definition_hash: str,
    step_count: int,
    entry: str,
    max_attempts: int,
    runs: Sequence[tuple[uuid.UUID, Any]],
) -> None:
    await conn.execute(
        QUERIES["start_runs"],
        {
            "runs": _json([{"id": str(run_id), "input": data} for run_id, data in runs]),
            "flow": flow,
            "definition_hash": definition_hash,
            "step_count": step_count,
            "entry": entry,
            "max_attempts": max_attempts,
        },
    )


async def claim_step(conn: Connection, run_id: uuid.UUID, step: str, attempt: int) -> Claim | None:
    cursor = await conn.execute(
        QUERIES["claim_step"],
        {"run_id": run_id, "step": step, "attempt": attempt, "data": Jsonb({})},
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return Claim(row["input"], row["max_attempts"], row["flow"], row["definition_hash"])


async def lock_run(conn: Connection, run_id: uuid.UUID) -> LockedRun | None:
    """Lock the run row until the transaction ends: one step ending at a time per run."""
    row = await (await conn.execute(QUERIES["lock_run"], {"run_id": run_id})).fetchone()
    if row is None:
        return None
    return LockedRun(row["status"], row["emitted"], row["created_at"])


async def complete_step(
    conn: Connection, run_id: uuid.UUID, step: str, attempt: int, result: Any
) -> CompletedStep | None:
    """Record the result; None if this attempt is no longer the running one (a duplicate)."""
    rows = await (
        await conn.execute(
            QUERIES["complete_step"],
            {"run_id": run_id, "step": step, "attempt": attempt, "result": Jsonb(result)},
        )
    ).fetchall()
    done = next((row for row in rows if row["finished_at"] is not None), None)
    if done is None:
        return None
    return CompletedStep(
        done["started_at"], done["finished_at"], {row["name"]: row["status"] for row in rows}
    )


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
) -> bool:
    row = await (
        await conn.execute(
            QUERIES["fail_step"],
            {"run_id": run_id, "step": step, "attempt": attempt, "error": Jsonb(error)},
        )
    ).fetchone()
    return row is not None


async def record_progress(conn: Connection, progress: Progress) -> list[str]:
    """Write new steps, events, the run row and (if it ends) statistics; returns the newly
    queued step names (a step already scheduled in the run is left alone)."""
    row = await (
        await conn.execute(
            QUERIES["record_progress"],
            {
                "run_id": progress.run_id,
                "status": progress.status,
                "emitted": Jsonb(progress.emitted),
                "completed": progress.completed,
                "finishing": progress.finishing,
                "result": None if progress.result is None else Jsonb(progress.result),
                "error": None if progress.error is None else Jsonb(progress.error),
                "steps": _json([step.to_json() for step in progress.steps]),
                "events": _json(
                    [
                        {"type": e.type, "step": e.step, "attempt": e.attempt, "data": e.data}
                        for e in progress.events
                    ]
                ),
            },
        )
    ).fetchone()
    assert row is not None, "record_progress always returns one row"
    return list(row["queued"])
