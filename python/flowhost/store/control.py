"""What run control reads and writes beside the run index: attempts to stop, steps to run
again, and the history a replay copies from one run into another.

Functions here run on a connection the caller owns, inside its transaction where they write.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from flowhost.db.database import Connection
from flowhost.db.json_codec import dumps_text
from flowhost.db.queries import QUERIES
from flowhost.store.runs import JobKey


@dataclasses.dataclass(frozen=True, slots=True)
class StaleAttempt:
    job: JobKey
    run_status: str | None  # None: the run is gone
    step_status: str | None


async def stale_attempts(conn: Connection, jobs: Sequence[JobKey]) -> list[StaleAttempt]:
    """Of these attempts, those whose run is over or that are no longer their step's running
    attempt."""
    payload = [
        {"run_id": str(run), "step": step, "attempt": attempt} for run, step, attempt in jobs
    ]
    rows = await (
        await conn.execute(QUERIES["stale_attempts"], {"jobs": dumps_text(payload)})
    ).fetchall()
    return [
        StaleAttempt(
            (row["run_id"], row["step"], row["attempt"]), row["run_status"], row["step_status"]
        )
        for row in rows
    ]


async def requeue_steps(
    conn: Connection, run_id: uuid.UUID, attempts: Mapping[str, int]
) -> dict[str, int]:
    """Give each step (-> its budget of attempts) a new attempt; returns step -> its number."""
    payload = [{"name": name, "attempts": budget} for name, budget in attempts.items()]
    rows = await (
        await conn.execute(
            QUERIES["requeue_steps"], {"run_id": run_id, "steps": dumps_text(payload)}
        )
    ).fetchall()
    return {row["name"]: row["attempt"] for row in rows}


async def unschedule_steps(conn: Connection, run_id: uuid.UUID, names: Sequence[str]) -> None:
    await conn.execute(QUERIES["unschedule_steps"], {"run_id": run_id, "names": list(names)})


async def replay_point(conn: Connection, run_id: uuid.UUID, step: str) -> int | None:
    """The id of the event where `step` first started in the run, None if it never did."""
    row = await (
        await conn.execute(QUERIES["replay_point"], {"run_id": run_id, "step": step})
    ).fetchone()
    return None if row is None or row["event_id"] is None else int(row["event_id"])


async def steps_completed_before(
    conn: Connection, run_id: uuid.UUID, before: int
) -> dict[str, int]:
    """Steps that completed before event `before`, in that order -> the attempt that did."""
    rows = await (
        await conn.execute(QUERIES["steps_completed_before"], {"run_id": run_id, "before": before})
    ).fetchall()
    return {row["name"]: row["attempt"] for row in rows}


async def copy_history(
    conn: Connection,
    *,
    from_run: uuid.UUID,
    to_run: uuid.UUID,
    before: int,
    steps: Mapping[str, int],
) -> list[tuple[str, Any]]:
    """Record in `to_run` the completed `steps` (-> their completing attempt) of `from_run`:
    their rows, their emit and step.completed events, then the state of `from_run` as of event
    `before`. Returns the copied emits, (name, payload) in order."""
    names = list(steps)
    params = {"from_run": from_run, "run_id": to_run, "before": before}
    await conn.execute(QUERIES["copy_steps"], {**params, "names": names})
    payload = [{"name": name, "attempt": attempt} for name, attempt in steps.items()]
    rows = await (
        await conn.execute(QUERIES["copy_step_events"], {**params, "steps": dumps_text(payload)})
    ).fetchall()
    await conn.execute(QUERIES["copy_state"], params)
    return [(row["name"], row["payload"]) for row in rows]
