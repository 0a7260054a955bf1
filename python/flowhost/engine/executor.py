"""Runs step jobs: claim the attempt, run the handler, record the outcome atomically.

The handler runs in a child process (flowhost.workers) unless its function opts into the
host's own process (`isolation="inprocess"`, trusted Python only).

Claims and completions of concurrent jobs are grouped into one statement / one transaction per
batch (group commit); a failed attempt is recorded on its own.

A host runs a step only for runs on the definition of the flow it serves (code versions): a
job of a run on another definition goes back to the queue, for a host serving that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, NoReturn

from flowhost import metrics, tracing
from flowhost.actions.step_actions import StepActions
from flowhost.db.database import Database
from flowhost.engine import scheduling
from flowhost.engine.await_jobs import AwaitJobRunner
from flowhost.engine.batching import GroupCommitter
from flowhost.engine.catalog import FunctionCatalog
from flowhost.engine.definitions import FlowDefinition, StepDefinition
from flowhost.engine.in_flight import InFlightAttempts
from flowhost.engine.inprocess import InProcessBackend, run_in_process
from flowhost.engine.orchestrator import (
    AttemptRecord,
    Completion,
    EmitListener,
    complete_attempts,
    describe_error,
    fail_attempt,
)
from flowhost.errors import DatabaseUnavailableError, FlowhostError, HookFailedError
from flowhost.queue.jobs import QueueJob, RequeueJob, StartJob, StepJob
from flowhost.store import runs, versions
from flowhost.store.events import append_events
from flowhost.store.json_data import as_json
from flowhost.workers.cancellation import Cancellation
from flowhost.workers.failures import ChildFailure
from flowhost.workers.supervisor import Supervisor
from flowhost.workers.worker import LateOutputSink, LogEntry
from flowhost_worker import Awaited, RetryRequested
from flowhost_worker.awaits import HOOK_KINDS
from flowhost_worker.context import ContextBackend
from flowhost_worker.job import HookCall

logger = logging.getLogger(__name__)

# A job whose bookkeeping failed (database away, say) is offered again after this long.
REQUEUE_DELAY = 1.0
# A job of a run on another definition than this host's: offered again after this long when a
# live host serves that definition, else (the run is parked) after the longer delay.
ELSEWHERE_DELAY = 0.5
PARKED_DELAY = 15.0
# Output a child wrote after its answer is recorded after the attempt's outcome; if recording
# that outcome takes longer than this (the database is away), the output is recorded anyway.
LATE_OUTPUT_WAIT = 30.0


class StepExecutor:
    """The queue consumer's handler for step jobs, running steps in this process."""

    def __init__(
        self,
        database: Database,
        catalog: FunctionCatalog,
        *,
        max_batch: int,
        supervisor: Supervisor | None = None,
        public_url: str | None = None,
        host_stale_after: float = 6.0,
        adopt_definitions: bool = False,
        hot_database: Database | None = None,
        on_emit: EmitListener | None = None,
        actions: StepActions | None = None,
    ) -> None:
        """`hot_database`: the pool that claims and records attempts (default `database`);
        `actions`: what steps' ctx.publish and ctx.http use (None: they are refused)."""
        self._database = database
        self._hot_database = hot_database or database
        self._catalog = catalog
        self._supervisor = supervisor
        # Hears the emits that count, in the transactions recording them (event triggers).
        self._on_emit = on_emit
        self._actions = actions
        self._awaits = AwaitJobRunner(
            database, catalog, self.run_hook, public_url=public_url, on_emit=on_emit
        )
        self._host_stale_after = host_stale_after
        # `flowhost dev`: a run on another definition of a flow moves onto this host's (when
        # its scheduled steps still exist), so that editing code does not park your own runs.
        self._adopt_definitions = adopt_definitions
        self._parked_seen: set[tuple[str, str]] = set()
        self._claims = GroupCommitter(self._claim_batch, max_batch=max_batch)
        self._completions = GroupCommitter(self._complete_batch, max_batch=max_batch)
        # The attempts running here, so that those whose run ends can be stopped.
        self.in_flight = InFlightAttempts()

    async def _claim_batch(
        self, jobs: Sequence[runs.ClaimRequest]
    ) -> list[runs.Claim | runs.WrongDefinition | None]:
        with tracing.span("flowhost.claim", {"flowhost.batch_size": len(jobs)}):
            async with self._hot_database.connection() as conn:
                claims = await runs.claim_steps(conn, jobs, stale_after=self._host_stale_after)
        return [claims.get(job[:3]) for job in jobs]

    async def _complete_batch(self, completions: Sequence[Completion]) -> list[Exception | None]:
        """Records a batch in one transaction. If that fails for a reason other than the
        database being away, each completion is recorded alone, so that one attempt whose
        output Postgres refuses fails alone; its error is its outcome."""
        try:
            with tracing.span("flowhost.complete", {"flowhost.batch_size": len(completions)}):
                async with self._hot_database.transaction(pipeline=True) as conn:
                    await complete_attempts(conn, completions, on_emit=self._on_emit)
            return [None] * len(completions)
        except DatabaseUnavailableError:
            raise
        except Exception as exc:
            if len(completions) == 1:
                return [exc]
            logger.warning(
                "recording %d results together failed (%s); recording them one by one",
                len(completions),
                exc,
            )
        return [(await self._complete_batch([completion]))[0] for completion in completions]

    async def __call__(self, job: QueueJob) -> None:
        if isinstance(job, StartJob):
            await self._start(job)
        elif isinstance(job, StepJob):
            # Children's housekeeping (spares, exits) waits while steps are busy here.
            with self._supervisor.busy() if self._supervisor else contextlib.nullcontext():
                await self._run_step(job)
        else:
            await self._awaits(job)

    async def _run_step(self, job: StepJob) -> None:
        flow = self._catalog.flows.get(job.flow)
        if flow is None or job.step not in flow.steps:
            # Reached only after a reload removed the step: leave the job for a host serving it.
            raise RequeueJob(f"this host does not serve step {job.flow}/{job.step}", delay=5.0)
        try:
            claim = await self._claims.submit((job.run_id, job.step, job.attempt, flow.hash))
            if isinstance(claim, runs.WrongDefinition) and await self._adopt(flow, job):
                claim = await self._claims.submit((job.run_id, job.step, job.attempt, flow.hash))
        except FlowhostError as exc:
            raise RequeueJob(f"could not claim the attempt: {exc}", REQUEUE_DELAY) from exc
        if claim is None:
            return  # stale: the attempt already ended, or the run is over
        if isinstance(claim, runs.WrongDefinition):
            self._put_back(flow, claim)
        recorded = asyncio.Event()  # set once the attempt's outcome is recorded, or never is
        try:
            await self._run_attempt(flow, job, claim, recorded)
        finally:
            recorded.set()

    async def _run_attempt(
        self, flow: FlowDefinition, job: StepJob, claim: runs.Claim, recorded: asyncio.Event
    ) -> None:
        step = flow.step(job.step)
        record = AttemptRecord()
        backend = InProcessBackend(
            self._database,
            run_id=job.run_id,
            flow=job.flow,
            step=job.step,
            attempt=job.attempt,
            emits=step.emits,
            record=record,
            flows=self._catalog.flows,
            actions=self._actions,
            env=step.env,
        )
        failure: Exception | None = None
        began = time.perf_counter()
        with (
            self.in_flight.track((job.run_id, job.step, job.attempt)) as cancellation,
            tracing.span("flowhost.step", _span_attributes(job)),
        ):
            try:
                result = await self.run_in_runtime(
                    step,
                    backend,
                    run_id=job.run_id,
                    attempt=job.attempt,
                    max_attempts=claim.max_attempts,
                    input=claim.input,
                    awaited=claim.awaited,
                    cancellation=cancellation,
                    traceparent=tracing.current_traceparent(),
                    late_output=self._late_output(job, step, cancellation, recorded),
                )
                result = as_json(result, f"the result of step {job.step!r}")
            except Exception as exc:
                failure = exc
        took = time.perf_counter() - began
        if cancellation.reason is not None:
            # Its run is over (or it is no longer the step's current attempt): nothing of it is
            # recorded, as a success or as a failure.
            logger.info(
                "attempt %d of %s/%s stopped: %s",
                job.attempt,
                job.flow,
                job.step,
                cancellation.reason,
            )
            metrics.observe_attempt(job.flow, job.step, "canceled", None)
            return
        if failure is not None:
            await self._record_failure(flow, job, failure, record, claim.max_attempts)
            metrics.observe_attempt(job.flow, job.step, _failed(job, claim.max_attempts), took)
            return
        try:
            refused = await self._completions.submit(Completion(flow, job, result, record))
        except FlowhostError as exc:
            # Nothing of the attempt was recorded: the job comes back and the attempt runs again.
            raise RequeueJob(f"could not record the result: {exc}", REQUEUE_DELAY) from exc
        if refused is not None:
            # Postgres refused what the attempt produced: the attempt fails, without its logs
            # (they may be what was refused).
            await self._record_failure(flow, job, refused, AttemptRecord(), claim.max_attempts)
            metrics.observe_attempt(job.flow, job.step, _failed(job, claim.max_attempts), took)
            return
        metrics.observe_attempt(job.flow, job.step, "completed", took)

    def _late_output(
        self,
        job: StepJob,
        step: StepDefinition,
        cancellation: Cancellation,
        recorded: asyncio.Event,
    ) -> LateOutputSink:
        """Records what a child wrote after its answer (a thread or a grandchild of the step
        still writing) as log events of the attempt, after its outcome, in a transaction of
        their own; nothing of an attempt whose run ended while it ran is recorded."""

        async def record_late(entries: list[LogEntry]) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(recorded.wait(), LATE_OUTPUT_WAIT)
            if cancellation.reason is not None:
                return
            late = AttemptRecord()
            backend = InProcessBackend(
                self._database,
                run_id=job.run_id,
                flow=job.flow,
                step=job.step,
                attempt=job.attempt,
                emits=step.emits,
                record=late,
            )
            for level, message, fields in entries:
                backend.log(level, message, fields)
            await self._record_hook_logs(late)

        return record_late

    async def _start(self, job: StartJob) -> None:
        """A delayed run's time came: it starts, through its flow's limits (or waits for a
        slot); if a debounce pushed its time back, the next start job waits for that."""
        flow = self._catalog.flows.get(job.flow)
        if flow is None:
            raise RequeueJob(f"this host does not serve flow {job.flow}", delay=5.0)
        try:
            async with self._database.transaction() as conn:
                due = await scheduling.take_due_start(conn, job.run_id)
                if due.run is not None:
                    await scheduling.admit_runs(conn, flow, [due.run], announce=True)
                elif due.wait is not None:
                    # A new job, not this one requeued: a new job wakes the consumers.
                    later = scheduling.AdmittedRun(job.run_id)
                    await scheduling.schedule_start(
                        conn, flow, later, due.wait, round=job.round + 1
                    )
        except FlowhostError as exc:
            raise RequeueJob(f"could not start the run: {exc}", REQUEUE_DELAY) from exc

    async def _adopt(self, flow: FlowDefinition, job: StepJob) -> bool:
        """In `flowhost dev`: move the job's run onto this host's definition; True if moved."""
        if not self._adopt_definitions:
            return False
        async with self._database.transaction() as conn:
            moved = await versions.migrate_runs(
                conn,
                flow=flow.name,
                to_hash=flow.hash,
                steps=sorted(flow.steps),
                run_ids=[job.run_id],
                by="flowhost dev",
            )
        return job.run_id in moved.moved

    def _put_back(self, flow: FlowDefinition, claim: runs.WrongDefinition) -> NoReturn:
        if claim.served:
            raise RequeueJob(
                f"its run is on definition {claim.definition_hash} of the flow, this host "
                f"serves {flow.hash}",
                ELSEWHERE_DELAY,
                expected=True,
            )
        if (flow.name, claim.definition_hash) not in self._parked_seen:
            self._parked_seen.add((flow.name, claim.definition_hash))
            logger.warning(
                "runs of flow %s on definition %s are parked: no live host serves it (this "
                "host serves %s); see `flowhost runs parked`",
                flow.name,
                claim.definition_hash,
                flow.hash,
            )
        raise RequeueJob(
            f"parked: no live host serves definition {claim.definition_hash}",
            PARKED_DELAY,
            expected=True,
        )

    async def run_in_runtime(
        self,
        step: StepDefinition,
        backend: ContextBackend,
        *,
        run_id: uuid.UUID,
        attempt: int,
        max_attempts: int,
        input: Any,
        awaited: Awaited | None = None,
        hook: HookCall | None = None,
        cancellation: Cancellation | None = None,
        traceparent: str | None = None,
        late_output: LateOutputSink | None = None,
    ) -> Any:
        """Run `step`'s handler, or with `hook` one of its await hooks, where the step runs: in
        a child process, or in this one for an in-process function. Returns what the function
        returned; raises what it raised (a ChildFailure from a child). A request on
        `cancellation` stops it (the child: cancel, SIGTERM, SIGKILL; in-process: its task).
        What a child writes after its answer goes to `late_output`."""
        if step.isolation == "inprocess":
            return await run_in_process(
                self._catalog,
                step,
                backend,
                run_id=str(run_id),
                attempt=attempt,
                max_attempts=max_attempts,
                input=input,
                awaited=awaited,
                hook=hook,
                cancellation=cancellation or Cancellation(),
                traceparent=traceparent,
            )
        if self._supervisor is None:
            raise RuntimeError(
                f"step {step.name!r} runs in a child process, but this executor has no supervisor"
            )
        return await self._supervisor.run(
            step,
            backend,
            run_id=str(run_id),
            attempt=attempt,
            max_attempts=max_attempts,
            input=input,
            awaited=awaited,
            hook=hook,
            cancellation=cancellation,
            traceparent=traceparent,
            late_output=late_output,
        )

    async def run_hook(
        self, flow: str, step: str, run_id: uuid.UUID, function: str, kind: str, data: Any
    ) -> None:
        """Run `function`, the `kind` hook ("register", "resolve", "timeout") of an await of
        step `step` of `flow`, for run `run_id`, with `data`, in the step's runtime.

        Its logs become `log` events of the run (with `hook` in their data), its state changes
        act on the run's state, and it cannot emit. Raises HookFailedError (with the failure's
        `error` as a step's would be recorded) when the hook fails, RequeueJob when this host
        does not serve the step, LookupError when no await of the step names that hook."""
        definition = self._catalog.flows.get(flow)
        if definition is None or step not in definition.steps:
            raise RequeueJob(f"this host does not serve step {flow}/{step}", delay=5.0)
        declared = definition.step(step)
        if kind not in HOOK_KINDS or not any(
            hooks.hooks.get(kind) == function for hooks in declared.awaits().values()
        ):
            raise LookupError(f"step {flow}/{step} declares no {kind} hook {function!r}")
        record = AttemptRecord()
        backend = InProcessBackend(
            self._database,
            run_id=run_id,
            flow=flow,
            step=step,
            attempt=None,
            emits=(),
            record=record,
            flows=self._catalog.flows,
            hook=kind,
            actions=self._actions,
            env=declared.env,
        )
        try:
            await self.run_in_runtime(
                declared,
                backend,
                run_id=run_id,
                attempt=1,
                max_attempts=1,
                input=data,
                hook=HookCall(function, kind),
            )
        except Exception as exc:
            error = exc.describe() if isinstance(exc, ChildFailure) else describe_error(exc)
            await self._record_hook_logs(record)
            raise HookFailedError(
                f"the {kind} hook {function!r} of step {flow}/{step} failed: "
                f"{error['type']}: {error['message']}",
                error=error,
            ) from exc
        await self._record_hook_logs(record)

    async def _record_hook_logs(self, record: AttemptRecord) -> None:
        if record.logs:
            async with self._database.transaction() as conn:
                await append_events(conn, record.logs)

    async def _record_failure(
        self,
        flow: FlowDefinition,
        job: StepJob,
        exc: Exception,
        record: AttemptRecord,
        max_attempts: int,
    ) -> None:
        if isinstance(exc, ChildFailure):
            error, retry_delay = exc.describe(), exc.retry_delay
        else:
            error = describe_error(exc)
            retry_delay = exc.delay if isinstance(exc, RetryRequested) else None
        try:
            async with self._database.transaction() as conn:
                await fail_attempt(
                    conn,
                    flow,
                    job,
                    error,
                    record,
                    max_attempts=max_attempts,
                    retry_delay=retry_delay,
                )
        except FlowhostError as error:
            raise RequeueJob(f"could not record the failure: {error}", REQUEUE_DELAY) from error


def _failed(job: StepJob, max_attempts: int) -> str:
    """The metrics' outcome of a failed attempt: retried while attempts are left."""
    return "retried" if job.attempt < max_attempts else "failed"


def _span_attributes(job: StepJob) -> dict[str, str | int]:
    return {
        "flowhost.flow": job.flow,
        "flowhost.step": job.step,
        "flowhost.run_id": str(job.run_id),
        "flowhost.attempt": job.attempt,
    }
