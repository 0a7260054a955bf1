"""The transactions that move runs forward.

Starting runs, and ending a step attempt, are each one transaction: the events, the projections
and the queue jobs they imply commit together or not at all (DESIGN §3). Ending attempts
costs a few statements for a whole batch of them: lock the runs and record the attempts; append
the events and record their consequences; enqueue what became ready. In pipeline mode
(`Database.transaction(pipeline=True)`) each of those groups is one round trip, the last one
with the COMMIT.
"""

from __future__ import annotations

import dataclasses
import datetime
import traceback
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from flowhost.db.database import Connection
from flowhost.engine import scheduling
from flowhost.engine.awaits import Registration, publish_jobs, register_awaits
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.transitions import Progress, progress, step_input
from flowhost.errors import InvalidInputError
from flowhost.queue.jobs import QueueJob, StepJob
from flowhost.queue.pgqueuer_queue import enqueue_jobs
from flowhost.store import awaits as await_store
from flowhost.store import runs
from flowhost.store.events import (
    EMIT,
    FLOW_COMPLETED,
    FLOW_FAILED,
    FLOW_WAITING,
    STEP_CANCELED,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_RETRY,
    STEP_SKIPPED,
    NewEvent,
    append_events,
)
from flowhost.store.json_data import storable_text

SKIP_REASON = "its subscriptions can no longer be satisfied"
# A run moves on while it is in one of these (see flowhost.store.reads.LIVE_STATUSES).
MOVING = frozenset({"running", "awaiting"})


@dataclasses.dataclass(slots=True)
class AttemptRecord:
    """What a step attempt produced besides its result: buffered logs and emits."""

    logs: list[NewEvent] = dataclasses.field(default_factory=list)
    emits: list[tuple[str, Any]] = dataclasses.field(default_factory=list)


def describe_error(exc: BaseException) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": storable_text(str(exc)),
        "stack": storable_text("".join(traceback.format_exception(exc))),
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Emitted:
    """An emit that counts now, in the transaction that records it."""

    run_id: uuid.UUID
    step: str
    name: str
    payload: Any


class EmitListener(Protocol):
    """What else emits do, in the transaction that records them: event triggers fire
    (flowhost.triggers.event_triggers). An implementation returns at once, without touching
    `conn`, for emits it has nothing to do for: this runs on the engine's hot path."""

    async def emitted(self, conn: Connection, emits: Sequence[Emitted]) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class StartTiming:
    """When new runs may start: now, after `delay` seconds, or at `start_at` (which wins).
    `reason` names why they wait, in their `flow.waiting` event."""

    delay: float = 0.0
    start_at: datetime.datetime | None = None
    reason: str = "delay"

    @property
    def delayed(self) -> bool:
        return self.start_at is not None or self.delay > 0


async def start_runs(
    conn: Connection,
    flow: FlowDefinition,
    inputs: Sequence[Any],
    ids: Sequence[uuid.UUID] | None = None,
    *,
    parent_run_id: uuid.UUID | None = None,
    priority: int | None = None,
    timing: StartTiming | None = None,
    started_data: Mapping[str, Any] | None = None,
    own_started_data: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[uuid.UUID]:
    """Create runs of `flow` and pass them through flow control; call inside a transaction.
    `started_data` goes into each flow.started event (`restart_of`, say), and
    `own_started_data` (one per input) into each run's own (a trigger fire's id).

    A run starts at once (its entry job enqueued) unless its flow's limits make it wait for a
    slot or `timing` delays it: it is `queued` until then. One run with the options a start may
    carry (keys, windows): `flowhost.engine.starting.start_run`."""
    timing = timing or StartTiming()
    run_ids = list(ids) if ids is not None else [uuid.uuid4() for _ in inputs]
    entry = flow.step(flow.entry)
    limits = flow.limits
    run_priority = limits.priority if priority is None else priority
    owns = own_started_data if own_started_data is not None else [None] * len(run_ids)
    new_runs = [
        runs.NewRun(run_id, data, scheduling.concurrency_key(limits, data), own)
        for run_id, data, own in zip(run_ids, inputs, owns, strict=True)
    ]
    waits = timing.delayed or limits.limits_runs
    if waits and entry.await_before is not None:
        # Both would hold the entry step back, each by its own means; keep one.
        raise InvalidInputError(
            f"flow {flow.name!r} starts by awaiting (its entry step has await_before), so its "
            "runs start at once: they cannot be delayed or wait for a run slot (max_runs, "
            "key_concurrency)"
        )
    if not timing.delayed and (limits.limits_runs or entry.name in limits.step_limits):
        # The flow's lock comes before its flow_stats row, which start_runs updates.
        await scheduling.lock_flows(conn, [flow])
    start_at = await runs.start_runs(
        conn,
        flow=flow.name,
        definition_hash=flow.hash,
        step_count=len(flow.steps),
        entry=entry.name,
        max_attempts=entry.attempts,
        runs=new_runs,
        parent_run_id=parent_run_id,
        started_data=started_data,
        start=runs.RunStart(
            status="queued" if waits else "running",
            priority=run_priority,
            delay=timing.delay,
            start_at=timing.start_at,
            flow_control=limits.controlled or timing.reason == "debounce",
            entry_flow_control=entry.name in limits.step_limits,
        ),
    )
    admitted = [scheduling.AdmittedRun(r.id, r.concurrency_key, run_priority) for r in new_runs]
    if entry.await_before is not None:
        await _await_entry(conn, flow, run_ids, inputs)
    elif timing.delayed:
        due = start_at.isoformat() if start_at is not None else None
        await append_events(
            conn,
            [
                NewEvent(run.run_id, FLOW_WAITING, {"reason": timing.reason, "start_at": due})
                for run in admitted
            ],
        )
        delay = _seconds_until(start_at)
        for run in admitted:
            await scheduling.schedule_start(conn, flow, run, delay)
    elif limits.limits_runs:
        await scheduling.admit_runs(conn, flow, admitted, announce=False)
    else:
        await scheduling.schedule_steps(
            conn,
            flow,
            [scheduling.ReadyStep(r.run_id, entry.name, 1, r.priority, r.key) for r in admitted],
        )
    return run_ids


def _seconds_until(moment: datetime.datetime | None) -> float:
    if moment is None:
        return 0.0
    return max(0.0, (moment - datetime.datetime.now(datetime.UTC)).total_seconds())


async def _await_entry(
    conn: Connection, flow: FlowDefinition, run_ids: Sequence[uuid.UUID], inputs: Sequence[Any]
) -> None:
    """An entry step with `await_before` waits before it runs: no job until it resolves."""
    entry = flow.step(flow.entry)
    assert entry.await_before is not None
    await await_store.hold_entry_steps(conn, run_ids, entry.name)
    hooks = await register_awaits(
        conn,
        [
            Registration(run_id, flow.name, entry.name, "before", entry.await_before, data)
            for run_id, data in zip(run_ids, inputs, strict=True)
        ],
    )
    await await_store.refresh_run_status(conn, run_ids)
    await enqueue_jobs(conn, hooks)


@dataclasses.dataclass(frozen=True, slots=True)
class Completion:
    """A successful attempt, waiting to be recorded."""

    flow: FlowDefinition
    job: StepJob
    result: Any
    record: AttemptRecord


async def complete_attempts(
    conn: Connection,
    completions: Sequence[Completion],
    *,
    on_emit: EmitListener | None = None,
) -> None:
    """Record successful attempts of any runs and schedule what they made ready; call inside a
    transaction. Attempts that are no longer running (duplicate deliveries) change nothing.
    `on_emit` hears the emits that count, in this transaction (event triggers).

    A step with `await_after` is left `awaiting` with its result and emits held in its await:
    they count when the await resolves (flowhost.engine.await_resolution)."""
    # Locks, then results: sent together (one round trip in pipeline mode), in this order.
    locking = await runs.send_lock_runs(conn, [c.job.run_id for c in completions])
    await scheduling.lock_flows(conn, [c.flow for c in completions])
    holding = [
        (c.job.run_id, c.job.step, c.job.attempt)
        for c in completions
        if c.flow.step(c.job.step).await_after is not None
    ]
    completing = await runs.send_complete_steps(
        conn, [((c.job.run_id, c.job.step, c.job.attempt), c.result) for c in completions], holding
    )
    locked = await locking.result()
    done = await completing.result()
    live = [c for c in completions if c.job.run_id in locked]
    changes: dict[uuid.UUID, runs.Progress] = {}
    last: dict[uuid.UUID, Completion] = {}
    registrations: list[Registration] = []
    published: list[tuple[str, Any]] = []
    emitted: list[Emitted] = []
    for completion in live:
        job, record = completion.job, completion.record
        times = done.get(job.run_id, runs.CompletedSteps()).times.get(job.step)
        if times is None:
            continue  # a duplicate delivery of an attempt that already ended
        run = locked[job.run_id]
        change = changes.setdefault(
            job.run_id, runs.Progress(job.run_id, run.status, dict(run.emitted), finishing=False)
        )
        change.events += record.logs
        duration_ms = round((times[1] - times[0]).total_seconds() * 1000, 3)
        completed = NewEvent(
            job.run_id,
            STEP_COMPLETED,
            # The step row's times: step_stats and its rebuild from events count these.
            {
                "result": completion.result,
                "duration_ms": duration_ms,
                "finished_at": times[1].isoformat(),
            },
            job.step,
            job.attempt,
        )
        after = completion.flow.step(job.step).await_after
        if after is not None:
            change.events.append(completed)
            held = {"result": completion.result, "emits": record.emits, "attempt": job.attempt}
            registrations.append(
                Registration(
                    job.run_id,
                    completion.flow.name,
                    job.step,
                    "after",
                    after,
                    completion.result,
                    held,
                )
            )
            continue
        change.completed += 1
        for name, payload in record.emits:
            change.emitted.setdefault(name, payload)
            published.append((name, payload))
            emitted.append(Emitted(job.run_id, job.step, name, payload))
            change.events.append(
                NewEvent(
                    job.run_id, EMIT, {"name": name, "payload": payload}, job.step, job.attempt
                )
            )
        change.events.append(completed)
        last[job.run_id] = completion
    failing: dict[uuid.UUID, Progress] = {}
    for run_id, change in changes.items():
        latest = last.get(run_id)
        if change.status in MOVING and latest is not None:
            outcome = _advance(
                latest.flow, change, done[run_id].statuses, latest.result, registrations
            )
            if outcome.failed:
                failing[run_id] = outcome
    for run_id, outcome in failing.items():
        # A completion that did not emit what a step needed, which only a failed step might
        # have emitted too: that failure now blocks the flow.
        await _fail_run(conn, changes[run_id], outcome, await runs.step_rows(conn, run_id))
    registrations = [r for r in registrations if r.run_id not in failing]
    for run_id in {r.run_id for r in registrations}:
        if changes[run_id].status == "running":
            changes[run_id].status = "awaiting"
    # Sent before record_progress reads its answer, so that both travel together.
    lookup = await publish_jobs(conn, published) if published else None
    queued = await runs.record_progress(conn, list(changes.values()))
    ready: dict[str, list[scheduling.ReadyStep]] = {}
    for run_id, name in queued:
        run = locked[run_id]
        ready.setdefault(last[run_id].flow.name, []).append(
            scheduling.ReadyStep(run_id, name, 1, run.priority, run.concurrency_key)
        )
    for flow_name in sorted(ready):
        flow = next(c.flow for c in live if c.flow.name == flow_name)
        await scheduling.schedule_steps(conn, flow, ready[flow_name])
    jobs: list[QueueJob] = [*await register_awaits(conn, registrations)]
    if lookup is not None:
        jobs += await lookup.result()
    await enqueue_jobs(conn, jobs)
    # Nothing can resolve the awaits of a run that failed.
    await await_store.cancel_awaits_of_runs(
        conn, [run_id for run_id in failing if locked[run_id].status == "awaiting"]
    )
    if on_emit is not None and emitted:
        await on_emit.emitted(conn, emitted)


def _advance(
    flow: FlowDefinition,
    change: runs.Progress,
    statuses: Mapping[str, str],
    result: Any,
    registrations: list[Registration],
) -> Progress:
    """Schedule the steps that became ready, skip those that never can run (as soon as that is
    known), and complete the run when nothing is left to run. Does nothing when a failure
    blocks the flow (the returned progress says so): the caller fails the run.

    A ready step with `await_before` waits (`awaiting`) instead of being queued: its await is
    added to `registrations`, which the caller registers after `record_progress`."""
    next_steps = progress(flow, statuses, change.emitted)
    if next_steps.failed:
        return next_steps
    change.steps = []
    add_ready_steps(flow, change, next_steps.ready, registrations)
    change.steps += [runs.NewStep(change.run_id, name, "skipped") for name in next_steps.skipped]
    change.events += [
        NewEvent(change.run_id, STEP_SKIPPED, {"reason": SKIP_REASON}, name)
        for name in next_steps.skipped
    ]
    if not next_steps.finished:
        return next_steps
    data: dict[str, Any] = {"result": result}
    tolerated = sorted(name for name, status in statuses.items() if status == "failed")
    if tolerated:
        data["tolerated_failures"] = tolerated
    change.events.append(NewEvent(change.run_id, FLOW_COMPLETED, data))
    change.status, change.result, change.finishing = "completed", result, True
    return next_steps


def add_ready_steps(
    flow: FlowDefinition,
    change: runs.Progress,
    names: Sequence[str],
    registrations: list[Registration],
) -> None:
    """Write steps that became ready into `change`: queued, or `awaiting` with their await's
    registration added to `registrations` when they await before they run."""
    for name in names:
        step = flow.step(name)
        given = step_input(step, change.emitted)
        limited = step.concurrency is not None
        status = "queued" if step.await_before is None else "awaiting"
        change.steps.append(
            runs.NewStep(change.run_id, name, status, step.attempts, given, flow_control=limited)
        )
        if step.await_before is not None:
            registrations.append(
                Registration(change.run_id, flow.name, name, "before", step.await_before, given)
            )


async def register_ready_awaits(
    conn: Connection, change: runs.Progress, registrations: Sequence[Registration]
) -> None:
    """After `change` is written: register the awaits of its steps that await before they
    run (and enqueue their hooks); the run is `awaiting` while one waits."""
    if registrations:
        await enqueue_jobs(conn, await register_awaits(conn, registrations))
        await await_store.refresh_run_status(conn, [change.run_id])


class RunPosition(Protocol):
    """What a locked run row tells the steps that follow a failure: its status before, and
    the priority and concurrency key its steps are scheduled with."""

    @property
    def status(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def concurrency_key(self) -> str | None: ...


# What flowhost.engine.await_resolution moves runs on with, as steps' ends do.
advance = _advance


async def _fail_run(
    conn: Connection,
    change: runs.Progress,
    outcome: Progress,
    steps: Mapping[str, runs.StepRow],
    *,
    failed_step: str | None = None,
    error: dict[str, Any] | None = None,
) -> None:
    """End the run failed because of `outcome.failed_by`; its steps still in flight are
    canceled (their attempts stopped), so that a retry runs them again. The error named is the
    one of `failed_step` (just failed with `error`) if it is among them."""
    step = failed_step if failed_step in outcome.failed_by else outcome.failed_by[0]
    if step != failed_step or error is None:
        error = dict(steps[step].error or {})
    for canceled in await runs.cancel_steps(conn, [change.run_id]):
        change.events.append(
            NewEvent(
                change.run_id,
                STEP_CANCELED,
                {"reason": "the run failed", "previous_status": canceled.previous},
                canceled.name,
                canceled.attempt,
            )
        )
    details = {"steps": outcome.failed_by, "blocked": outcome.blocked}
    change.events.append(
        NewEvent(change.run_id, FLOW_FAILED, {"step": step, "error": error, **details})
    )
    change.status, change.finishing = "failed", True
    change.error = {"step": step, **error, **details}


fail_blocked_run = _fail_run


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
    """Record a failed attempt: schedule the next one, or fail the step; then the run fails if
    that failure blocks the flow, else it goes on (engine/transitions.py has the rules)."""
    run = (await runs.lock_runs(conn, [job.run_id])).get(job.run_id)
    if run is None:
        return
    await scheduling.lock_flows(conn, [flow])
    change = runs.Progress(
        job.run_id, run.status, run.emitted, finishing=False, events=list(record.logs)
    )
    if job.attempt < max_attempts:
        next_attempt = await runs.retry_step(conn, job.run_id, job.step, job.attempt, error)
        if next_attempt is None:
            return
        delay = (
            retry_delay
            if retry_delay is not None
            else flow.step(job.step).backoff.delay_before(next_attempt)
        )
        change.events.append(
            NewEvent(
                job.run_id,
                STEP_RETRY,
                {"error": error, "next_attempt": next_attempt, "delay": delay},
                job.step,
                job.attempt,
            )
        )
        await runs.record_progress(conn, [change])
        retry = scheduling.ReadyStep(
            job.run_id, job.step, next_attempt, run.priority, run.concurrency_key
        )
        await scheduling.schedule_retry(conn, flow, retry, delay)
        return
    finished_at = await runs.fail_step(conn, job.run_id, job.step, job.attempt, error)
    if finished_at is None:
        return
    change.events.append(
        NewEvent(
            job.run_id,
            STEP_FAILED,
            {"error": error, "finished_at": finished_at.isoformat()},
            job.step,
            job.attempt,
        )
    )
    if run.status in MOVING:
        await settle_failed_step(conn, flow, change, job.step, error, run=run)
        return
    await runs.record_progress(conn, [change])


async def settle_failed_step(
    conn: Connection,
    flow: FlowDefinition,
    change: runs.Progress,
    step: str,
    error: dict[str, Any],
    *,
    run: RunPosition,
) -> None:
    """After `step` failed for good (its row and events written in `change`): a step that
    failed emits nothing, so its failure may block the flow (the run fails), or be tolerated,
    and then it may be the run's last step (the run completes). Writes `change` and enqueues
    what became ready. `run`: the run as locked before."""
    steps = await runs.step_rows(conn, change.run_id)
    registrations: list[Registration] = []
    outcome = _advance(
        flow,
        change,
        {name: row.status for name, row in steps.items()},
        _last_result(steps),
        registrations,
    )
    if outcome.failed:
        registrations = []
        await _fail_run(conn, change, outcome, steps, failed_step=step, error=error)
    elif registrations and change.status == "running":
        change.status = "awaiting"
    queued = await runs.record_progress(conn, [change])
    await scheduling.schedule_steps(
        conn,
        flow,
        [
            scheduling.ReadyStep(change.run_id, name, 1, run.priority, run.concurrency_key)
            for _, name in queued
        ],
    )
    await enqueue_jobs(conn, await register_awaits(conn, registrations))
    if change.status not in MOVING and run.status == "awaiting":
        # Nothing can resolve the awaits of a run that is over.
        await await_store.cancel_awaits_of_runs(conn, [change.run_id])


def _last_result(steps: Mapping[str, runs.StepRow]) -> Any:
    """The result of the step that completed last: a run's result."""
    completed = [
        (row.finished_at, row.name, row.result)
        for row in steps.values()
        if row.status == "completed" and row.finished_at is not None
    ]
    return max(completed)[2] if completed else None
