"""Runs step attempts in child processes: picks a child, watches it, tells how it ended.

One supervisor per host. It owns the socket directory, one ROUTER per runtime, the warm pools
(one per Python interpreter and `preload` set, one per Node heap cap), the children a function
with `reuse` > 1 keeps, and the concurrency caps. Each attempt is an `Attempt`
(flowhost.workers.attempt), which enforces the step's limits while it runs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import uuid
from pathlib import Path
from typing import Any

import zmq.asyncio

from flowhost.engine.definitions import StepDefinition
from flowhost.settings import Settings
from flowhost.workers.attempt import ANSWER_AFTER_EXIT, Attempt
from flowhost.workers.cancellation import AttemptCanceled, Cancellation
from flowhost.workers.commands import RuntimeCommands
from flowhost.workers.environment import declared_environment
from flowhost.workers.launchers import Launcher, NodeLauncher, PythonLauncher
from flowhost.workers.output import OutputReader
from flowhost.workers.pool import WarmPool
from flowhost.workers.quiet import Quiet
from flowhost.workers.router import Router
from flowhost.workers.runtime_dir import RuntimeDirectory
from flowhost.workers.worker import MAX_LOGS_PER_ATTEMPT, JobBinding, LateOutputSink, Worker
from flowhost_worker.awaits import Awaited
from flowhost_worker.context import ContextBackend
from flowhost_worker.job import HookCall
from flowhost_worker.protocol import DEFAULT_MAX_FRAME

logger = logging.getLogger(__name__)

# A single-use child exits right after its answer; its last output lines are waited for this long.
OUTPUT_DRAIN = 0.5
# Spare children are started, and children that gave their last answer exit, once no step has
# run for this long (flowhost.workers.quiet): not while a chain of steps goes on.
QUIET_PERIOD = 0.01
# A child that answered waits at most this long for quiet before it is told to exit, and does
# not wait when this many others already do, or when its runtime has no free slot.
RETIRE_AT_MOST = 0.5
MAX_LINGERING = 4

PoolKey = tuple[Any, ...]


def execute_params(
    step: StepDefinition,
    *,
    run_id: str,
    attempt: int,
    max_attempts: int,
    input: Any,
    last: bool,
    awaited: Awaited | None = None,
    hook: HookCall | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """The params of `execute` (docs/protocol.md): the one place that writes them."""
    # A hook has an idempotency key of its own: it is not the step, and may act on the same
    # external system (a mail sent on register must not count as the step's own call).
    key = f"{run_id}:{step.name}" if hook is None else f"{run_id}:{step.name}:{hook.kind}"
    params: dict[str, Any] = {
        "job": {
            "run_id": run_id,
            "flow": step.flow,
            "step": step.name,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "idempotency_key": key,
            "file": step.file,
            "handler": step.function,
            # What the step may emit: the child checks names itself and sends emits as
            # notifications, without waiting for an answer (docs/protocol.md, `emit`).
            "emits": list(step.emits),
        },
        "input": input,
        "timeout": step.timeout,
        "env": declared_environment(step.env),
        "last": last,
    }
    if awaited is not None:
        params["awaited"] = awaited.to_params()
    if hook is not None:
        params["hook"] = hook.to_params()
    if traceparent is not None:
        params["traceparent"] = traceparent
    return params


class Supervisor:
    def __init__(self, settings: Settings, commands: RuntimeCommands, *, host_id: str) -> None:
        self._settings = settings
        self._commands = commands
        self._functions_dir = settings.functions_path.resolve()
        self._host_id = host_id
        self._interval = settings.worker_heartbeat_interval
        self._grace = settings.kill_grace
        self._max_frame = DEFAULT_MAX_FRAME
        self._context: zmq.asyncio.Context | None = None
        self._directory: RuntimeDirectory | None = None
        self._routers: dict[str, Router] = {}
        self._pools: dict[PoolKey, WarmPool] = {}
        self._launchers: dict[PoolKey, Launcher] = {}
        self._reusable: dict[tuple[str, str], collections.deque[Worker]] = {}
        self._workers: dict[str, Worker] = {}
        self._slots = {
            runtime: asyncio.Semaphore(settings.children_per_runtime)
            for runtime in ("python", "node")
        }
        self._step_slots: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self._heartbeats: asyncio.Task[None] | None = None
        # Children that gave their last answer and are exiting (see _retire).
        self._retiring: set[asyncio.Task[None]] = set()
        self._lingering = 0  # of those, the ones waiting for quiet before they exit
        self._quiet = Quiet(QUIET_PERIOD)

    async def __aenter__(self) -> Supervisor:
        self._context = zmq.asyncio.Context()
        self._directory = RuntimeDirectory()
        for runtime in ("python", "node"):
            router = Router(
                self._context, self._directory.endpoint(runtime), max_frame=self._max_frame
            )
            router.start()
            self._routers[runtime] = router
        self._heartbeats = asyncio.create_task(self._beat(), name="flowhost-worker-heartbeats")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def directory(self) -> Path | None:
        return None if self._directory is None else self._directory.path

    @property
    def workers(self) -> list[Worker]:
        return list(self._workers.values())

    def children_by_runtime(self) -> dict[str, int]:
        """Live children per runtime (the metrics' gauge)."""
        counts: dict[str, int] = {}
        for worker in self._workers.values():
            if worker.process.alive:
                counts[worker.runtime] = counts.get(worker.runtime, 0) + 1
        return counts

    def processes(self) -> list[dict[str, Any]]:
        """The children as the dashboard lists them: worker id, runtime, pid, whether it lives,
        jobs it ran, and the attempt it runs now (run, step, attempt; None when idle)."""
        found = []
        for worker in self._workers.values():
            job = worker.job
            busy = job is not None and not job.answered
            found.append(
                {
                    "id": worker.id,
                    "runtime": worker.runtime,
                    "pid": worker.process.pid,
                    "alive": worker.process.alive,
                    "jobs_done": worker.jobs_done,
                    "run_id": job.run_id if busy and job is not None else None,
                    "step": job.step if busy and job is not None else None,
                    "attempt": job.attempt if busy and job is not None else None,
                }
            )
        return found

    def busy(self) -> contextlib.AbstractContextManager[None]:
        """Around a step's work in the host, claim to recorded outcome (an in-process step's
        too): child housekeeping waits until no step has been busy for a moment."""
        return self._quiet.busy()

    def prepare(self, steps: list[StepDefinition]) -> None:
        """Start warm pools for these steps now, so that their first jobs find children."""
        for step in steps:
            if step.isolation != "inprocess":
                self._pool_for(step).refill()

    async def run(
        self,
        step: StepDefinition,
        backend: ContextBackend,
        *,
        run_id: str,
        attempt: int,
        max_attempts: int,
        input: Any,
        awaited: Awaited | None = None,
        hook: HookCall | None = None,
        cancellation: Cancellation | None = None,
        traceparent: str | None = None,
        late_output: LateOutputSink | None = None,
    ) -> Any:
        """Run attempt `attempt` of `step` in run `run_id` in a child; returns the handler's
        result or raises ChildFailure. The child's calls act on `backend`.

        `awaited` is how the step's await_before resolved (the step's `ctx.awaited`). With
        `hook`, the child runs that function of the step's file, with `input` as its data,
        instead of the handler; the step's limits apply to it alike. A request on
        `cancellation` stops the child (AttemptCanceled if it came before the child started).
        Output the child writes after its answer goes to `late_output` (see JobBinding)."""
        # The runtime's slot counts live children: a child that answered and is exiting keeps
        # it until it is gone (see _retire); the step's slot counts running attempts.
        slot = self._slots[step.runtime]
        if slot.locked():
            self._quiet.hurry()  # children waiting for quiet to exit hold the slots: now
        await slot.acquire()
        retired = False
        try:
            with self._quiet.busy():
                async with self._step_slot(step):
                    if cancellation is not None and cancellation.reason is not None:
                        raise AttemptCanceled(cancellation.reason)  # while it waited for a slot
                    worker = await self._worker_for(step)
                    last = worker.jobs_done + 1 >= step.reuse
                    params = execute_params(
                        step,
                        run_id=run_id,
                        attempt=attempt,
                        max_attempts=max_attempts,
                        input=input,
                        last=last,
                        awaited=awaited,
                        hook=hook,
                        traceparent=traceparent,
                    )
                    binding = JobBinding(
                        backend, step.name, late_output, run_id=run_id, attempt=attempt
                    )
                    worker.job = binding
                    worker.jobs_done += 1
                    watched = Attempt(
                        worker,
                        step,
                        heartbeat_interval=self._interval,
                        grace=self._grace,
                        cancellation=cancellation,
                    )
                    try:
                        result = await watched.run(params)
                        await binding.record_emits()
                        return result
                    finally:
                        retired = await self._after_job(
                            worker, step, binding, watched, slot, last=last
                        )
        finally:
            if not retired:
                slot.release()  # else the exiting child holds it until it is gone

    async def _after_job(
        self,
        worker: Worker,
        step: StepDefinition,
        binding: JobBinding,
        watched: Attempt,
        slot: asyncio.Semaphore,
        *,
        last: bool,
    ) -> bool:
        """Settle the child after its attempt, before the outcome is returned; True when the
        child was retired with the runtime's `slot` (released once it is gone)."""
        if watched.answered and watched.stopped is None and worker.process.alive:
            # The child flushed its output before answering: the attempt's output is complete
            # now, and its exit need not be waited for.
            await worker.settle_output()
            binding.answered = True
            self._note_drops(binding)
            if last:
                self._retire(worker, binding, slot)
                return True
            worker.job = None
            self._keep(worker, step)
            return False
        if last or watched.stopped is not None or not worker.process.alive:
            # Stopped, crashed or gone: its last lines come with its end.
            await self._end(worker)
        worker.job = None
        self._note_drops(binding)
        if worker.process.alive:
            self._keep(worker, step)
        return False

    async def _end(self, worker: Worker) -> None:
        # The receipt of the last answer: the child exits once it has it.
        await worker.notify("shutdown")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(worker.process.exited), self._grace)
        worker.process.kill()
        await worker.output_finished(OUTPUT_DRAIN)

    def _keep(self, worker: Worker, step: StepDefinition) -> None:
        """A child with jobs left (`reuse`) waits for the next job of its function."""
        self._reusable.setdefault((step.file, step.function), collections.deque()).append(worker)

    @staticmethod
    def _note_drops(binding: JobBinding) -> None:
        if binding.output.dropped:
            binding.backend.log(
                "warning",
                f"{binding.output.dropped} bytes of output were not kept "
                f"(at most {binding.output.limit} bytes per attempt)",
                {},
            )
            binding.output.dropped = 0
        if binding.dropped_logs:
            binding.backend.log(
                "warning",
                f"{binding.dropped_logs} log and progress messages were not kept "
                f"(at most {MAX_LOGS_PER_ATTEMPT} per attempt)",
                {},
            )
            binding.dropped_logs = 0

    def _retire(self, worker: Worker, binding: JobBinding, slot: asyncio.Semaphore) -> None:
        """Let a child that gave its last answer exit in the background (tracked; awaited by
        `close`); it is never handed another job."""
        task = asyncio.create_task(
            self._reap(worker, binding, slot), name=f"flowhost-retire {worker.id}"
        )
        self._retiring.add(task)
        task.add_done_callback(self._retired)

    async def _reap(self, worker: Worker, binding: JobBinding, slot: asyncio.Semaphore) -> None:
        try:
            if not slot.locked() and self._lingering < MAX_LINGERING:
                await self._linger(worker)
            await self._end(worker)
        finally:
            worker.job = None
            slot.release()
        await self._record_late(worker, binding)

    async def _linger(self, worker: Worker) -> None:
        """Until steps are quiet (its exit costs CPU that the run's next steps need more,
        flowhost.workers.quiet), or the child ended on its own."""
        self._lingering += 1
        try:
            await self._quiet.wait(RETIRE_AT_MOST, unless=worker.process.exited)
        finally:
            self._lingering -= 1

    async def _record_late(self, worker: Worker, binding: JobBinding) -> None:
        """Output written after the answer (by a thread or a grandchild of the step) is
        recorded as the attempt's own, in a transaction of its own, after its outcome."""
        late = binding.late
        if binding.output.dropped:
            late.append(
                (
                    "warning",
                    f"{binding.output.dropped} bytes of output after the step's answer were "
                    f"not kept (at most {binding.output.limit} bytes per attempt)",
                    {"late": True},
                )
            )
        if not late:
            return
        if binding.late_output is None:
            logger.warning(
                "worker %s (%s) wrote %d lines after its answer; not recorded",
                worker.id,
                binding.step,
                len(late),
            )
            return
        await binding.late_output(late)

    def _retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("retiring a worker failed", exc_info=task.exception())

    # -- children ------------------------------------------------------------------------------

    async def _worker_for(self, step: StepDefinition) -> Worker:
        kept = self._reusable.get((step.file, step.function))
        while kept:
            worker = kept.popleft()
            if worker.usable:
                return worker
        return await self._pool_for(step).acquire()

    def _pool_for(self, step: StepDefinition) -> WarmPool:
        if step.runtime == "python":
            interpreter = step.interpreter or self._commands.python
            key: PoolKey = ("python", interpreter, step.preload)
            size = self._settings.warm_python
        else:
            key = ("node", step.memory_mb)
            size = self._settings.warm_node
        pool = self._pools.get(key)
        if pool is None:
            launcher: Launcher = (
                PythonLauncher(
                    interpreter,
                    step.preload,
                    self._functions_dir,
                    self._commands.python_sdk_path(),
                )
                if step.runtime == "python"
                else NodeLauncher(self._commands, step.memory_mb, self._functions_dir)
            )
            self._launchers[key] = launcher
            pool = self._pools[key] = WarmPool(
                "/".join(str(part) for part in key if part),
                lambda: self._start(launcher),
                size,
                self._quiet,
            )
        return pool

    async def _start(self, launcher: Launcher) -> Worker:
        router = self._routers[launcher.runtime]
        worker_id = f"{launcher.runtime[0]}-{self._prefix}-{next(self._ids)}"
        transport = router.connect(worker_id.encode())
        try:
            process, stdout, stderr = await launcher.launch(worker_id, router.endpoint)
        except BaseException:
            router.disconnect(worker_id.encode())
            raise
        worker = Worker(
            worker_id,
            launcher.runtime,
            process,
            transport,
            host_id=self._host_id,
            heartbeat_interval=self._interval,
            max_frame=self._max_frame,
        )
        worker.output_readers = [
            OutputReader("stdout", stdout, worker.on_output),
            OutputReader("stderr", stderr, worker.on_output),
        ]
        self._workers[worker_id] = worker

        def forget(_: object) -> None:
            self._workers.pop(worker_id, None)
            # Not at once: the child's last answer may still be on its way through the socket.
            asyncio.get_running_loop().call_later(
                ANSWER_AFTER_EXIT, router.disconnect, worker_id.encode()
            )

        process.exited.add_done_callback(forget)
        return worker

    def _step_slot(self, step: StepDefinition) -> contextlib.AbstractAsyncContextManager[Any]:
        if step.concurrency is None:
            return contextlib.nullcontext()
        key = (step.flow, step.name)
        slot = self._step_slots.get(key)
        if slot is None:
            slot = self._step_slots[key] = asyncio.Semaphore(step.concurrency)
        return slot

    async def forget_loaded_code(self) -> None:
        """After the functions changed: children that imported a function file (kept for
        `reuse`) are stopped, so that the next job loads the new code."""
        kept = [w for workers in self._reusable.values() for w in workers]
        self._reusable.clear()
        for worker in kept:
            await worker.notify("shutdown")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            for worker in list(self._workers.values()):
                if worker.usable:
                    await worker.notify("heartbeat")

    async def close(self) -> None:
        """Stop every child (shutdown, then SIGKILL after the grace period), the zygotes, the
        sockets, and remove the socket directory."""
        self._quiet.hurry()  # children that answered exit now
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeats
        for pool in self._pools.values():
            await pool.close()
        workers = list(self._workers.values())
        for worker in workers:
            await worker.notify("shutdown")
        exits = [w.process.exited for w in workers if w.process.alive]
        if exits:
            await asyncio.wait(exits, timeout=self._grace)
        for worker in workers:
            worker.process.kill()
        if exits:
            await asyncio.wait(exits, timeout=self._grace)
        for worker in workers:
            await worker.output_finished(OUTPUT_DRAIN)
            worker.disconnect()
        if self._retiring:
            # Their children are gone by now; what is left is recording late output.
            await asyncio.wait(self._retiring)
        for launcher in self._launchers.values():
            await launcher.close()
        for router in self._routers.values():
            await router.close()
        if self._context is not None:
            self._context.term()
        if self._directory is not None:
            self._directory.remove()
