"""The transactions that move runs forward.

Starting runs, and ending a step attempt, are each one transaction: the events, the projections
and the queue jobs they imply commit together or not at all (DESIGN §3).
"""

from __future__ import annotations

import dataclasses
import traceback
import uuid
from collections.abc import Sequence
from typing import Any

from flowhost.db.database import Connection
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.transitions import progress, step_input
from flowhost.queue.jobs import StepJob
from flowhost.queue.pgqueuer_queue import enqueue_steps
from flowhost.store import runs
from flowhost.store.events import (
    EMIT,
    FLOW_COMPLETED,
    FLOW_FAILED,
    FLOW_STARTED,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_RETRY,
    STEP_SKIPPED,
    NewEvent,
    append_events,
)


@dataclasses.dataclass(slots=True)
class AttemptRecord:
    """What a step attempt produced besides its result: buffered logs and emits."""

    logs: list[NewEvent] = dataclasses.field(default_factory=list)
    emits: list[tuple[str, Any]] = dataclasses.field(default_factory=list)


def describe_error(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "stack": "".join(traceback.format_exception(exc)),
    }


async def start_runs(
    conn: Connection,
    flow: FlowDefinition,
    inputs: Sequence[Any],
    ids: Sequence[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """Create runs of `flow` and enqueue their entry step; call inside a transaction."""
    run_ids = list(ids) if ids is not None else [uuid.uuid4() for _ in inputs]
    entry = flow.step(flow.entry)
    await runs.insert_runs(conn, flow=flow.name, definition_hash=flow.hash,
                           step_count=len(flow.steps), ids=run_ids, inputs=inputs)
    await runs.insert_steps(conn, [runs.ScheduledStep(run_id, entry.name, entry.attempts, data)
                                   for run_id, data in zip(run_ids, inputs, strict=True)])
    await append_events(conn, [
        NewEvent(run_id, FLOW_STARTED, {"flow": flow.name, "input": data,
                                        "definition_hash": flow.hash})
        for run_id, data in zip(run_ids, inputs, strict=True)
    ])
    await runs.count_started_runs(conn, flow.name, len(run_ids))
    await enqueue_steps(conn, [StepJob(run_id, flow.name, entry.name, 1) for run_id in run_ids])
    return run_ids


async def complete_attempt(
    conn: Connection, flow: FlowDefinition, job: StepJob, result: Any, record: AttemptRecord
) -> None:
    """Record a successful attempt and schedule what it made ready; call inside a transaction."""
    run = await runs.lock_run(conn, job.run_id)
    if run is None:
        return
    finished_times = await runs.complete_step(conn, job.run_id, job.step, job.attempt, result)
    if finished_times is None:
        return  # a duplicate delivery of an attempt that already ended
    started_at, finished_at = finished_times
    emitted = dict(run.emitted)
    events = list(record.logs)
    for name, payload in record.emits:
        emitted.setdefault(name, payload)
        events.append(NewEvent(job.run_id, EMIT, {"name": name, "payload": payload},
                               job.step, job.attempt))
    duration_ms = round((finished_at - started_at).total_seconds() * 1000, 3)
    events.append(NewEvent(job.run_id, STEP_COMPLETED, {"result": result,
                                                        "duration_ms": duration_ms},
                           job.step, job.attempt))
    status = run.status
    if status == "running":
        statuses = await runs.step_statuses(conn, job.run_id)
        status = await _advance(conn, flow, job, statuses, emitted, events, result)
    await append_events(conn, events)
    updated = await runs.update_run(
        conn, job.run_id, status=status, emitted=emitted, step_count=len(flow.steps),
        completed=1, result=result if status == "completed" else None,
    )
    if status != "running" and run.status == "running":
        await _finish_run(conn, flow, job.run_id, status, updated)


async def _advance(
    conn: Connection,
    flow: FlowDefinition,
    job: StepJob,
    statuses: dict[str, str],
    emitted: dict[str, Any],
    events: list[NewEvent],
    result: Any,
) -> str:
    """Schedule the steps that became ready; returns the run's new status."""
    next_steps = progress(flow, statuses, emitted)
    scheduled = await runs.insert_steps(conn, [
        runs.ScheduledStep(job.run_id, name, flow.step(name).attempts,
                           step_input(flow.step(name), emitted))
        for name in next_steps.ready
    ])
    await enqueue_steps(conn, [StepJob(job.run_id, flow.name, name, 1)
                               for name in next_steps.ready if (job.run_id, name) in scheduled])
    if not next_steps.finished:
        return "running"
    await runs.skip_steps(conn, job.run_id, next_steps.skipped)
    events.extend(NewEvent(job.run_id, STEP_SKIPPED, {"reason": "its subscriptions can no "
                                                                "longer be satisfied"}, name)
                  for name in next_steps.skipped)
    events.append(NewEvent(job.run_id, FLOW_COMPLETED, {"result": result}))
    return "completed"


async def fail_attempt(
    conn: Connection,
    flow: FlowDefinition,
    job: StepJob,
    error: dict[str, Any],
    record: AttemptRecord,
    *,
    max_attempts: int,
    retry_delay: float | None = None,
) -> None:
    """Record a failed attempt: schedule the next one, or fail the step and the run."""
    run = await runs.lock_run(conn, job.run_id)
    if run is None:
        return
    events = list(record.logs)
    if job.attempt < max_attempts:
        next_attempt = await runs.retry_step(conn, job.run_id, job.step, job.attempt, error)
        if next_attempt is None:
            return
        delay = retry_delay if retry_delay is not None else flow.step(job.step).backoff.delay_before(
            next_attempt)
        events.append(NewEvent(job.run_id, STEP_RETRY, {"error": error, "next_attempt":
                                                        next_attempt, "delay": delay},
                               job.step, job.attempt))
        await append_events(conn, events)
        await enqueue_steps(conn, [StepJob(job.run_id, flow.name, job.step, next_attempt, delay)])
        return
    if not await runs.fail_step(conn, job.run_id, job.step, job.attempt, error):
        return
    events.append(NewEvent(job.run_id, STEP_FAILED, {"error": error}, job.step, job.attempt))
    status = "failed" if run.status == "running" else run.status
    run_error = {"step": job.step, **error}
    if run.status == "running":
        events.append(NewEvent(job.run_id, FLOW_FAILED, {"step": job.step, "error": error}))
    await append_events(conn, events)
    updated = await runs.update_run(
        conn, job.run_id, status=status, emitted=run.emitted, step_count=len(flow.steps),
        completed=0, error=run_error if status == "failed" else None,
    )
    if run.status == "running":
        await _finish_run(conn, flow, job.run_id, status, updated)


async def _finish_run(
    conn: Connection, flow: FlowDefinition, run_id: uuid.UUID, status: str, row: dict[str, Any]
) -> None:
    duration_ms = int((row["finished_at"] - row["created_at"]).total_seconds() * 1000)
    await runs.count_finished_run(conn, flow.name, status, duration_ms)
    await runs.notify_run_finished(conn, run_id, status)
