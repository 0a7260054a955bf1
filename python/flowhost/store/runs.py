"""The run index, step rows and flow statistics: the projections written beside the events.

Functions here run on a connection the caller owns, usually inside its transaction.
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


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduledStep:
    run_id: uuid.UUID
    name: str
    max_attempts: int
    input: Any


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


async def insert_runs(
    conn: Connection,
    *,
    flow: str,
    definition_hash: str,
    step_count: int,
    ids: Sequence[uuid.UUID],
    inputs: Sequence[Any],
) -> None:
    await conn.execute(
        QUERIES["insert_runs"],
        {"flow": flow, "definition_hash": definition_hash, "step_count": step_count,
         "ids": list(ids), "inputs": [Jsonb(i) for i in inputs]},
    )


async def insert_steps(conn: Connection, steps: Sequence[ScheduledStep]) -> set[tuple[uuid.UUID, str]]:
    """Schedule steps not yet scheduled in their run; returns the (run, step) pairs inserted."""
    if not steps:
        return set()
    cursor = await conn.execute(
        QUERIES["insert_steps"],
        {
            "run_ids": [s.run_id for s in steps],
            "names": [s.name for s in steps],
            "max_attempts": [s.max_attempts for s in steps],
            "inputs": [Jsonb(s.input) for s in steps],
        },
    )
    return {(row["run_id"], row["name"]) for row in await cursor.fetchall()}  # type: ignore[misc]


async def skip_steps(conn: Connection, run_id: uuid.UUID, names: Sequence[str]) -> None:
    if names:
        await conn.execute(QUERIES["skip_steps"], {"run_id": run_id, "names": list(names)})


async def count_started_runs(conn: Connection, flow: str, count: int) -> None:
    await conn.execute(QUERIES["count_started_runs"], {"flow": flow, "count": count})


async def count_finished_run(conn: Connection, flow: str, status: str, duration_ms: int) -> None:
    await conn.execute(
        QUERIES["count_finished_run"],
        {"flow": flow, "status": status, "duration_ms": duration_ms},
    )


async def claim_step(
    conn: Connection, run_id: uuid.UUID, step: str, attempt: int
) -> Claim | None:
    cursor = await conn.execute(
        QUERIES["claim_step"],
        {"run_id": run_id, "step": step, "attempt": attempt, "data": Jsonb({})},
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return Claim(row["input"], row["max_attempts"], row["flow"], row["definition_hash"])  # type: ignore[arg-type]


async def lock_run(conn: Connection, run_id: uuid.UUID) -> LockedRun | None:
    row = await (await conn.execute(QUERIES["lock_run"], {"run_id": run_id})).fetchone()
    if row is None:
        return None
    return LockedRun(row["status"], row["emitted"], row["created_at"])  # type: ignore[arg-type]


async def step_statuses(conn: Connection, run_id: uuid.UUID) -> dict[str, str]:
    rows = await (await conn.execute(QUERIES["step_statuses"], {"run_id": run_id})).fetchall()
    return {row["name"]: row["status"] for row in rows}  # type: ignore[misc]


async def complete_step(
    conn: Connection, run_id: uuid.UUID, step: str, attempt: int, result: Any
) -> tuple[datetime, datetime] | None:
    """Record the result; None if this attempt is no longer the running one (a duplicate)."""
    row = await (await conn.execute(
        QUERIES["complete_step"],
        {"run_id": run_id, "step": step, "attempt": attempt, "result": Jsonb(result)},
    )).fetchone()
    return None if row is None else (row["started_at"], row["finished_at"])  # type: ignore[return-value]


async def retry_step(
    conn: Connection, run_id: uuid.UUID, step: str, attempt: int, error: dict[str, Any]
) -> int | None:
    """Queue the next attempt; returns its number, None if this attempt is not running."""
    row = await (await conn.execute(
        QUERIES["retry_step"],
        {"run_id": run_id, "step": step, "attempt": attempt, "error": Jsonb(error)},
    )).fetchone()
    return None if row is None else int(row["attempt"])  # type: ignore[call-overload]


async def fail_step(
    conn: Connection, run_id: uuid.UUID, step: str, attempt: int, error: dict[str, Any]
) -> bool:
    row = await (await conn.execute(
        QUERIES["fail_step"],
        {"run_id": run_id, "step": step, "attempt": attempt, "error": Jsonb(error)},
    )).fetchone()
    return row is not None


async def update_run(
    conn: Connection,
    run_id: uuid.UUID,
    *,
    status: str,
    emitted: dict[str, Any],
    step_count: int,
    completed: int,
    result: Any = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    row = await (await conn.execute(
        QUERIES["update_run"],
        {
            "run_id": run_id,
            "status": status,
            "emitted": Jsonb(emitted),
            "step_count": step_count,
            "completed": completed,
            "result": None if result is None else Jsonb(result),
            "error": None if error is None else Jsonb(error),
        },
    )).fetchone()
    assert row is not None, "update_run runs after lock_run found the run"
    return row


async def notify_run_finished(conn: Connection, run_id: uuid.UUID, status: str) -> None:
    payload = json.dumps({"run": str(run_id), "status": status})
    await conn.execute(QUERIES["notify_run_finished"], {"payload": payload})
