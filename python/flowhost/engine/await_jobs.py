"""The queue jobs awaits leave behind: hooks to run, steps to release, events to publish.

Each was enqueued in the transaction that made it necessary, so it runs at least once. A hook
runs in its step's runtime, with the step's attempts and backoff; a hook that fails is an
`await.hook_failed` event of the run and never holds the await up.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from flowhost.db.database import Database
from flowhost.engine.await_resolution import (
    AWAIT_HOOK_FAILED,
    AwaitSettlement,
    resolve_event_awaits,
)
from flowhost.engine.awaits import resolve_url
from flowhost.engine.catalog import FunctionCatalog
from flowhost.engine.definitions import FlowDefinition, StepDefinition
from flowhost.engine.orchestrator import EmitListener, describe_error
from flowhost.errors import FlowhostError, HookFailedError
from flowhost.queue.jobs import HookJob, PublishJob, ReleaseJob, RequeueJob
from flowhost.queue.pgqueuer_queue import enqueue_jobs
from flowhost.store import awaits as store
from flowhost.store.events import NewEvent, append_events

logger = logging.getLogger(__name__)

# A job whose database work failed (the database away, say) is offered again after this long.
REQUEUE_DELAY = 1.0
# A job for a flow this host does not serve (any more) is left to others for this long.
NOT_SERVED_DELAY = 5.0

# StepExecutor.run_hook: (flow, step, run id, function, kind, data); raises HookFailedError.
HookRunner = Callable[[str, str, uuid.UUID, str, str, Any], Awaitable[None]]


class AwaitJobRunner:
    def __init__(
        self,
        database: Database,
        catalog: FunctionCatalog,
        run_hook: HookRunner,
        *,
        public_url: str | None,
        on_emit: EmitListener | None = None,
    ) -> None:
        self._database = database
        self._catalog = catalog
        self._run_hook = run_hook
        self._public_url = public_url
        self._on_emit = on_emit

    async def __call__(self, job: HookJob | ReleaseJob | PublishJob) -> None:
        try:
            if isinstance(job, PublishJob):
                async with self._database.transaction() as conn:
                    await resolve_event_awaits(
                        conn,
                        job.awaits,
                        job.payload,
                        flows=self._catalog.flows,
                        on_emit=self._on_emit,
                    )
            elif isinstance(job, ReleaseJob):
                await self._release(job)
            else:
                await self._hook(job)
        except FlowhostError as exc:
            raise RequeueJob(f"await job failed: {exc}", REQUEUE_DELAY) from exc

    def _served(self, flow_name: str, step_name: str) -> tuple[FlowDefinition, StepDefinition]:
        flow = self._catalog.flows.get(flow_name)
        if flow is None or step_name not in flow.steps:
            raise RequeueJob(
                f"this host does not serve step {flow_name}/{step_name}", NOT_SERVED_DELAY
            )
        return flow, flow.step(step_name)

    async def _release(self, job: ReleaseJob) -> None:
        flow, _ = self._served(job.flow, job.step)
        async with self._database.transaction() as conn:
            locked = await store.lock_runs(conn, [job.run_id])
            settlement = AwaitSettlement(conn, locked, self._catalog.flows, on_emit=self._on_emit)
            await settlement.release(job.run_id, job.step, flow)
            await settlement.finish()

    async def _hook(self, job: HookJob) -> None:
        _, step = self._served(job.flow, job.step)
        data = copy.deepcopy(job.data)
        token: str | None = None
        if data["await"].get("type") == "webhook":
            async with self._database.connection() as conn:
                row = await store.await_of_step(conn, job.run_id, job.step, job.position)
            token = None if row is None else row["token"]
            if token is not None:
                # Hooks are where a person gets the URL (by mail, say): the one place it goes.
                data["await"]["url"] = resolve_url(self._public_url, token)
        try:
            await self._run_hook(job.flow, job.step, job.run_id, job.function, job.kind, data)
        except RequeueJob:
            raise
        except HookFailedError as exc:
            await self._failed(job, step, exc.error, token)
        except Exception as exc:
            await self._failed(job, step, describe_error(exc), token)

    async def _failed(
        self, job: HookJob, step: StepDefinition, error: dict[str, Any], token: str | None
    ) -> None:
        if token:
            error = {
                k: v.replace(token, "***") if isinstance(v, str) else v for k, v in error.items()
            }
        retry = job.attempt < step.attempts
        delay = step.backoff.delay_before(job.attempt + 1) if retry else None
        logger.warning(
            "hook %s of %s/%s (%s) failed: %s",
            job.function,
            job.flow,
            job.step,
            job.kind,
            error.get("message"),
        )
        async with self._database.transaction() as conn:
            await append_events(
                conn,
                [
                    NewEvent(
                        job.run_id,
                        AWAIT_HOOK_FAILED,
                        {
                            "kind": job.kind,
                            "position": job.position,
                            "function": job.function,
                            "attempt": job.attempt,
                            "max_attempts": step.attempts,
                            "error": error,
                            "next_attempt": job.attempt + 1 if retry else None,
                        },
                        job.step,
                    )
                ],
            )
            if retry:
                await enqueue_jobs(
                    conn,
                    [dataclasses.replace(job, attempt=job.attempt + 1, delay=delay or 0.0)],
                )
