"""The gate every queue job passes: flow control, decided in Postgres (docs/flow-control.md).

Work is enqueued here and nowhere else. A run of a flow with run limits (max_runs,
key_concurrency) starts only with a slot, else it waits `queued` in `flowhost.flow_waiters`;
a step with a concurrency limit is enqueued only with a slot, else it stays `queued` without a
job. Each decision is made in the caller's transaction, under a lock of the flow's control row
(flows without limits take no lock and pay nothing). Releasing slots needs no call: triggers on
runs and steps release them in whatever transaction ends the holder, and grant them to the next
waiters there (migration 0005).

Lock order, for every transaction: runs, then flow control rows (by flow name), then
flow_stats. A batch touching several limited flows calls `lock_flows` first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.engine.definitions import FlowDefinition, FlowLimits
from flowhost.engine.json_pointer import resolve
from flowhost.queue.jobs import StartJob, StepJob
from flowhost.queue.pgqueuer_queue import enqueue_steps

# Concurrency keys longer than this are stored as a hash (they are primary-key columns).
MAX_KEY_LENGTH = 200


@dataclasses.dataclass(frozen=True, slots=True)
class ReadyStep:
    """A step whose job may be enqueued now, as far as its run goes."""

    run_id: uuid.UUID
    step: str
    attempt: int = 1
    priority: int = 0
    # The run's concurrency key: waiting steps are served round-robin between keys too.
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "step": self.step,
            "attempt": self.attempt,
            "key": self.key,
            "priority": self.priority,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class AdmittedRun:
    """A queued run that may start now, as far as its start time goes."""

    run_id: uuid.UUID
    key: str | None = None
    priority: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class DueStart:
    """What `take_due_start` found: the run starts now (`run` set), waits `wait` more seconds,
    or there is nothing to start (both None: canceled, or started by another host)."""

    run: AdmittedRun | None = None
    wait: float | None = None


def concurrency_key(limits: FlowLimits, data: Any) -> str | None:
    """The run's concurrency key: the JSON text of the input's value at the flow's pointer
    (JSON `null` when the input has none there), or None when the flow declares no key."""
    if limits.concurrency_key is None:
        return None
    _found, value = resolve(data, limits.concurrency_key)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_KEY_LENGTH:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


async def lock_flows(conn: Connection, flows: Iterable[FlowDefinition]) -> None:
    """Lock the control rows of the limited ones among `flows`, in name order."""
    controlled = sorted({f.name: f for f in flows if f.limits.controlled}.items())
    if not controlled:
        return
    items = [{"flow": name, "limits": flow.limits.to_json()} for name, flow in controlled]
    await conn.execute(QUERIES["lock_flow_controls"], {"flows": Jsonb(items)})


async def schedule_steps(
    conn: Connection, flow: FlowDefinition, steps: Sequence[ReadyStep]
) -> None:
    """Enqueue the jobs of steps that became ready; a step with a concurrency limit gets its
    job only with a slot, else it waits for one."""
    limits = flow.limits
    free = [s for s in steps if s.step not in limits.step_limits]
    limited = [s for s in steps if s.step in limits.step_limits]
    await enqueue_steps(
        conn, [StepJob(s.run_id, flow.name, s.step, s.attempt, 0.0, s.priority) for s in free]
    )
    if limited:
        await conn.execute(
            QUERIES["schedule_limited_steps"],
            {
                "flow": flow.name,
                "limits": Jsonb(limits.to_json()),
                "steps": Jsonb([s.to_json() for s in limited]),
            },
        )


async def enqueue_ungated(conn: Connection, flow: str, steps: Sequence[ReadyStep]) -> None:
    """Enqueue steps of a flow whose definition (and so limits) is not at hand."""
    await enqueue_steps(
        conn, [StepJob(s.run_id, flow, s.step, s.attempt, 0.0, s.priority) for s in steps]
    )


async def schedule_retry(
    conn: Connection, flow: FlowDefinition, step: ReadyStep, delay: float
) -> None:
    """The next attempt of a step: it keeps the slot it holds, so it is enqueued at once."""
    await enqueue_steps(
        conn, [StepJob(step.run_id, flow.name, step.step, step.attempt, delay, step.priority)]
    )


async def admit_runs(
    conn: Connection, flow: FlowDefinition, runs: Sequence[AdmittedRun], *, announce: bool
) -> dict[uuid.UUID, bool]:
    """Queued runs that may start as far as time goes: each takes its slots and its entry step
    goes through the step gate, or it waits for a slot (still queued). `announce` records a
    `flow.admitted` event for each run that starts (it was seen queued). Returns run -> whether
    it started."""
    rows = await (
        await conn.execute(
            QUERIES["admit_runs"],
            {
                "flow": flow.name,
                "entry": flow.entry,
                "limits": Jsonb(flow.limits.to_json()),
                "runs": Jsonb(
                    [
                        {
                            "run_id": str(run.run_id),
                            "key": run.key,
                            "priority": run.priority,
                            "announce": announce,
                        }
                        for run in runs
                    ]
                ),
            },
        )
    ).fetchall()
    return {row["admitted_run"]: row["admitted"] for row in rows}


async def hold_run(
    conn: Connection, flow: FlowDefinition, run_id: uuid.UUID, key: str | None
) -> None:
    """A run an operator retried or replayed holds its run slots at once, even over the limit
    (its steps still pass the step gate). Call before the run's flow_stats row is touched."""
    await conn.execute(
        QUERIES["hold_run"],
        {"flow": flow.name, "limits": Jsonb(flow.limits.to_json()), "run_id": run_id, "key": key},
    )


async def schedule_start(
    conn: Connection, flow: FlowDefinition, run: AdmittedRun, delay: float, *, round: int = 0
) -> None:
    """A delayed start: a start job runs `take_due_start` and `admit_runs` when it is due
    (`round` numbers the start jobs of one run)."""
    await enqueue_steps(conn, [StartJob(run.run_id, flow.name, delay, run.priority, round)])


async def take_due_start(conn: Connection, run_id: uuid.UUID) -> DueStart:
    """Mark a delayed run started if its time came (its row stays locked: call `admit_runs`
    next, in the same transaction)."""
    row = await (await conn.execute(QUERIES["take_due_start"], {"run_id": run_id})).fetchone()
    assert row is not None, "take_due_start always returns one row"
    if row["due"]:
        return DueStart(run=AdmittedRun(run_id, row["run_key"], row["run_priority"]))
    wait = row["wait_seconds"]
    return DueStart(wait=None if wait is None else float(wait))


async def register_flows(conn: Connection, flows: Iterable[FlowDefinition]) -> None:
    """Record each flow's limits (a host serving it does this when it starts or reloads);
    waiters that fit under changed limits start."""
    for flow in sorted(flows, key=lambda f: f.name):
        await conn.execute(
            QUERIES["register_flow_controls"],
            {"flow": flow.name, "limits": Jsonb(flow.limits.to_json())},
        )


async def grant_waiting(conn: Connection) -> int:
    """Grant free slots that no release granted (see migration 0005); hosts call this
    periodically. Returns how many waiters it started."""
    row = await (await conn.execute(QUERIES["grant_waiting"])).fetchone()
    return int(row["granted"]) if row else 0
