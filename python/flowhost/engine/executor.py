"""Runs one step job: claim the attempt, call the handler, record the outcome atomically."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from flowhost.db.database import Database
from flowhost.engine.catalog import FunctionCatalog
from flowhost.engine.inprocess import InProcessBackend, as_json
from flowhost.engine.orchestrator import (
    AttemptRecord,
    complete_attempt,
    describe_error,
    fail_attempt,
)
from flowhost.queue.jobs import StepJob
from flowhost.store import runs
from flowhost_worker import RetryRequested, RunContext

logger = logging.getLogger(__name__)


class StepExecutor:
    """The queue consumer's handler for step jobs, running steps in this process."""

    def __init__(self, database: Database, catalog: FunctionCatalog) -> None:
        self._database = database
        self._catalog = catalog

    async def __call__(self, job: StepJob) -> None:
        flow = self._catalog.flows.get(job.flow)
        if flow is None or job.step not in flow.steps:
            # Reached only after a reload removed the step: leave the job for a host serving it.
            raise LookupError(f"this host does not serve step {job.flow}/{job.step}")
        async with self._database.connection() as conn:
            claim = await runs.claim_step(conn, job.run_id, job.step, job.attempt)
        if claim is None:
            return  # stale: the attempt already ended, or the run is over
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
        )
        ctx = RunContext(
            backend,
            run_id=str(job.run_id),
            flow_name=job.flow,
            step_name=job.step,
            attempt=job.attempt,
            max_attempts=claim.max_attempts,
        )
        try:
            handler = self._catalog.handler(step)
            timeout = asyncio.timeout(step.timeout) if step.timeout else contextlib.nullcontext()
            async with timeout:
                result = await handler(claim.input, ctx)
            result = as_json(result, f"the result of step {job.step!r}")
        except Exception as exc:
            if isinstance(exc, TimeoutError) and step.timeout:
                exc = TimeoutError(f"step {job.step!r} timed out after {step.timeout:g}s")
            retry_delay = exc.delay if isinstance(exc, RetryRequested) else None
            async with self._database.transaction() as conn:
                await fail_attempt(
                    conn,
                    flow,
                    job,
                    describe_error(exc),
                    record,
                    max_attempts=claim.max_attempts,
                    retry_delay=retry_delay,
                )
            return
        async with self._database.transaction() as conn:
            await complete_attempt(conn, flow, job, result, record)
