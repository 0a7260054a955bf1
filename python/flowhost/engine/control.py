"""Run control: cancel a run, restart it, replay it from a step, retry it after a failure.

Each operation is one transaction (call it inside the caller's), checks its inputs first and
raises a FlowhostError that says what is wrong: RunNotFoundError, FlowNotFoundError (the run's
flow is not among `flows`), StepNotFoundError, RunStateError (the run's status or history does
not allow it). Status changes go through `runs.record_progress`, which also moves the run in
the flow statistics.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

from flowhost.db.database import Connection
from flowhost.engine import scheduling
from flowhost.engine.awaits import Registration
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.orchestrator import (
    SKIP_REASON,
    add_ready_steps,
    register_ready_awaits,
    start_runs,
)
from flowhost.engine.transitions import progress
from flowhost.errors import FlowNotFoundError, RunNotFoundError, RunStateError, StepNotFoundError
from flowhost.store import awaits as await_store
from flowhost.store import control as control_store
from flowhost.store import reads, runs
from flowhost.store.events import (
    FLOW_CANCELED,
    FLOW_RETRIED,
    STEP_CANCELED,
    STEP_SKIPPED,
    NewEvent,
)

# A stalled run may still hold steps in flight (that is how it stalled): it can be canceled.
CANCELABLE_STATUSES = reads.LIVE_STATUSES | {"stalled"}
RETRYABLE_STATUSES = frozenset({"failed", "stalled"})
# The steps a retry runs again: those that failed, those the run's end canceled and, in a
# stalled run, those whose attempts were lost.
_RETRIED_STEPS = {
    "failed": {"failed", "canceled"},
    "stalled": {"failed", "canceled", "queued", "running"},
}


@dataclasses.dataclass(frozen=True, slots=True)
class Canceled:
    run_id: uuid.UUID
    previous_status: str
    # Steps that were queued, running or awaiting, now canceled.
    steps: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Restarted:
    run_id: uuid.UUID  # the new run
    restart_of: uuid.UUID
    # The old run was live, and is now canceled.
    canceled: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Replayed:
    run_id: uuid.UUID  # the new run
    replay_of: uuid.UUID
    from_step: str
    # Steps whose recorded results the new run reuses, in the order they completed.
    reused: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class Retried:
    run_id: uuid.UUID
    previous_status: str
    # Steps run again -> the number of their next attempt.
    steps: dict[str, int]
    # Skipped steps that can run again.
    unskipped: list[str]


async def cancel_run(
    conn: Connection,
    run_id: uuid.UUID,
    *,
    by: str,
    reason: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Canceled:
    """Cancel a live (or stalled) run: its queued, running and awaiting steps end `canceled`,
    hosts running one of its attempts stop it (NOTIFY flowhost_cancel at commit), nothing more
    of it runs. `data` is added to the flow.canceled event."""
    run = (await runs.lock_runs(conn, [run_id])).get(run_id)
    if run is None:
        raise RunNotFoundError(f"no run {run_id}")
    if run.status not in CANCELABLE_STATUSES:
        raise RunStateError(
            f"run {run_id} is {run.status}: only a queued, running, awaiting or stalled run "
            "can be canceled"
        )
    steps = await runs.cancel_steps(conn, [run_id])
    events = [
        NewEvent(
            run_id,
            STEP_CANCELED,
            {"reason": reason, "previous_status": step.previous},
            step.name,
            step.attempt,
        )
        for step in steps
    ]
    events.append(
        NewEvent(
            run_id,
            FLOW_CANCELED,
            {"by": by, "reason": reason, "previous_status": run.status, **(data or {})},
        )
    )
    change = runs.Progress(run_id, "canceled", dict(run.emitted), finishing=True, events=events)
    await runs.record_progress(conn, [change])
    return Canceled(run_id, run.status, [step.name for step in steps])


async def restart_run(
    conn: Connection, run_id: uuid.UUID, flows: Mapping[str, FlowDefinition], *, by: str
) -> Restarted:
    """Start a new run of the run's flow with its input (`restart_of` in its flow.started); a
    live old run is canceled, with reason "restarted"."""
    old = await reads.get_run(conn, run_id)
    flow = _flow_of(old, flows)
    new_id = uuid.uuid4()
    canceled = False
    if old["status"] in reads.LIVE_STATUSES:
        try:
            await cancel_run(
                conn, run_id, by=by, reason="restarted", data={"restarted_as": str(new_id)}
            )
            canceled = True
        except RunStateError:
            pass  # it ended meanwhile
    await start_runs(conn, flow, [old["input"]], [new_id], started_data={"restart_of": str(run_id)})
    return Restarted(new_id, run_id, canceled)


async def replay_run(
    conn: Connection,
    run_id: uuid.UUID,
    step: str,
    flows: Mapping[str, FlowDefinition],
    *,
    by: str,
) -> Replayed:
    """Start a new run that reuses what run `run_id` recorded before `step` first started: the
    steps completed by then (their rows, results and emits), and the run's state as of then.
    Then `step`, and whatever else was ready at that point, runs again, and the rest follows.
    The new run's flow.started data names the old run (`replay_of`) and `from_step`."""
    old = await reads.get_run(conn, run_id)
    flow = _flow_of(old, flows)
    if step not in flow.steps:
        raise StepNotFoundError(
            f"flow {flow.name!r} has no step {step!r} (steps: {', '.join(sorted(flow.steps))})"
        )
    cut = await control_store.replay_point(conn, run_id, step)
    if cut is None:
        raise RunStateError(
            f"step {step!r} never started in run {run_id}: replay from a step that ran"
        )
    completed = await control_store.steps_completed_before(conn, run_id, cut)
    reused = {name: attempt for name, attempt in completed.items() if name in flow.steps}
    new_id = uuid.uuid4()
    started = {"replay_of": str(run_id), "from_step": step, "by": by}
    if not reused:
        # Nothing ran before it (it is the entry step): a new run with the same input.
        await start_runs(conn, flow, [old["input"]], [new_id], started_data=started)
        return Replayed(new_id, run_id, step, [])
    limits = flow.limits
    key = scheduling.concurrency_key(limits, old["input"])
    # The flow's lock before its flow_stats row (flowhost.engine.scheduling).
    await scheduling.hold_run(conn, flow, new_id, key)
    await runs.start_runs(
        conn,
        flow=flow.name,
        definition_hash=flow.hash,
        step_count=len(flow.steps),
        entry=None,
        max_attempts=0,
        runs=[runs.NewRun(new_id, old["input"], key)],
        started_data=started,
        start=runs.RunStart(priority=limits.priority, flow_control=limits.controlled),
    )
    emitted: dict[str, Any] = {}
    for name, payload in await control_store.copy_history(
        conn, from_run=run_id, to_run=new_id, before=cut, steps=reused
    ):
        emitted.setdefault(name, payload)
    next_steps = progress(flow, dict.fromkeys(reused, "completed"), emitted)
    if step not in next_steps.ready:
        raise RunStateError(
            f"step {step!r} of run {run_id} cannot run again from what the run recorded "
            "before it started"
        )
    change = runs.Progress(new_id, "running", emitted, finishing=False, completed=len(reused))
    registrations: list[Registration] = []
    add_ready_steps(flow, change, next_steps.ready, registrations)
    _skip(change, next_steps.skipped)
    queued = await runs.record_progress(conn, [change])
    await register_ready_awaits(conn, change, registrations)
    await scheduling.schedule_steps(
        conn,
        flow,
        [scheduling.ReadyStep(new_id, name, 1, limits.priority, key) for _, name in queued],
    )
    return Replayed(new_id, run_id, step, list(reused))


async def retry_run(
    conn: Connection, run_id: uuid.UUID, flows: Mapping[str, FlowDefinition], *, by: str
) -> Retried:
    """Take a failed (or stalled) run back to running: its failed steps, and those its end
    canceled, get a new attempt (numbered on from their last) with a fresh budget; skipped
    steps that can now run become reachable again."""
    old = await reads.get_run(conn, run_id)
    flow = _flow_of(old, flows)
    run = (await runs.lock_runs(conn, [run_id]))[run_id]
    if run.status not in RETRYABLE_STATUSES:
        raise RunStateError(
            f"run {run_id} is {run.status}: only a failed or stalled run can be retried"
        )
    rows = await runs.step_rows(conn, run_id)
    again = {
        name: flow.step(name).attempts
        for name, row in rows.items()
        if row.status in _RETRIED_STEPS[run.status] and name in flow.steps
    }
    if not again:
        raise RunStateError(f"run {run_id} has no failed, canceled or lost step to run again")
    # The run's slots come back at once; the flow's lock before its flow_stats row.
    await scheduling.hold_run(conn, flow, run_id, run.concurrency_key)
    attempts = await control_store.requeue_steps(conn, run_id, again)
    # A step whose await before it never resolved (it timed out, or the run's end canceled
    # it) waits for it again: running it now would skip what it waits for (an approval).
    rearmed = await _unresolved_awaits_before(conn, flow, run_id, list(attempts))
    await await_store.rearm_steps(conn, run_id, rearmed)
    skipped = {name for name, row in rows.items() if row.status == "skipped"}
    statuses = {
        name: "queued" if name in attempts else row.status
        for name, row in rows.items()
        if name not in skipped
    }
    next_steps = progress(flow, statuses, run.emitted)
    unskipped = sorted(skipped - set(next_steps.skipped))
    await control_store.unschedule_steps(conn, run_id, unskipped)
    change = runs.Progress(run_id, "running", dict(run.emitted), finishing=False)
    change.events.append(
        NewEvent(
            run_id,
            FLOW_RETRIED,
            {
                "by": by,
                "previous_status": run.status,
                "steps": attempts,
                "unskipped": unskipped,
            },
        )
    )
    registrations = [
        Registration(run_id, flow.name, name, "before", step.await_before, rows[name].input)
        for name in rearmed
        if (step := flow.step(name)).await_before is not None
    ]
    add_ready_steps(flow, change, next_steps.ready, registrations)
    _skip(change, [name for name in next_steps.skipped if name not in skipped])
    queued = await runs.record_progress(conn, [change])
    await register_ready_awaits(conn, change, registrations)
    # Steps run again and steps now reachable pass the step gate like any ready step.
    ready = [(name, attempt) for name, attempt in attempts.items() if name not in rearmed]
    ready += [(name, 1) for _, name in queued]
    await scheduling.schedule_steps(
        conn,
        flow,
        [
            scheduling.ReadyStep(run_id, name, attempt, run.priority, run.concurrency_key)
            for name, attempt in ready
        ],
    )
    return Retried(run_id, run.status, attempts, unskipped)


async def _unresolved_awaits_before(
    conn: Connection, flow: FlowDefinition, run_id: uuid.UUID, names: list[str]
) -> list[str]:
    """Those of `names` that await before they run and whose await has not resolved."""
    awaiting = [name for name in names if flow.step(name).await_before is not None]
    if not awaiting:
        return []
    resolved = {
        row["step"]
        for row in await await_store.awaits_of_run(conn, run_id)
        if row["position"] == "before" and row["status"] == await_store.RESOLVED
    }
    return [name for name in awaiting if name not in resolved]


def _skip(change: runs.Progress, names: list[str]) -> None:
    change.steps += [runs.NewStep(change.run_id, name, "skipped") for name in names]
    change.events += [
        NewEvent(change.run_id, STEP_SKIPPED, {"reason": SKIP_REASON}, name) for name in names
    ]


def _flow_of(run: Mapping[str, Any], flows: Mapping[str, FlowDefinition]) -> FlowDefinition:
    flow = flows.get(run["flow"])
    if flow is None:
        raise FlowNotFoundError(
            f"run {run['id']} is a run of flow {run['flow']!r}, which this project does not "
            "define (or defines with problems)"
        )
    return flow
