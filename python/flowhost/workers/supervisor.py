"""Runs step attempts in child processes: picks a child, watches it, tells how it ended.

One supervisor per host. It owns the socket directory, one ROUTER per runtime, the warm pools
(one per Python interpreter and `preload` set, one per Node heap cap) and the children a
function with `reuse` > 1 keeps. While an attempt runs it enforces the step's limits: the
wall-clock timeout (cancel, then SIGTERM, then SIGKILL), the memory cap (resident size, and the
data segment of Python children), the CPU-time cap (RLIMIT_CPU), and the heartbeat.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import signal
import uuid
from pathlib import Path
from typing import Any

import zmq.asyncio

from flowhost.engine.definitions import StepDefinition
from flowhost.settings import Settings
from flowhost.workers import failures
from flowhost.workers.commands import RuntimeCommands
from flowhost.workers.environment import declared_environment
from flowhost.workers.failures import ChildFailure
from flowhost.workers.launchers import Launcher, NodeLauncher, PythonLauncher
from flowhost.workers.output import OutputReader
from flowhost.workers.pool import WarmPool
from flowhost.workers.router import Router
from flowhost.workers.runtime_dir import RuntimeDirectory
from flowhost.workers.worker import MAX_LOGS_PER_ATTEMPT, JobBinding, Worker
from flowhost_worker.context import ContextBackend
from flowhost_worker.protocol import DEFAULT_MAX_FRAME, ErrorCode
from flowhost_worker.rpc import RemoteError

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
# How often a running attempt's memory, heartbeat and deadline are checked.
WATCH_INTERVAL = 0.1
# A single-use child exits right after its answer; its last output lines are waited for this long.
OUTPUT_DRAIN = 0.5
# A child's answer may trail its exit through the socket by a moment.
ANSWER_AFTER_EXIT = 0.2
HEARTBEATS_MISSED = 3

PoolKey = tuple[Any, ...]


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

    def prepare(self, steps: list[StepDefinition]) -> None:
        """Start warm pools for these steps now, so that their first jobs find children."""
        for step in steps:
            if step.isolation != "inprocess":
                self._pool_for(step).refill()

    async def run(
        self, step: StepDefinition, params: dict[str, Any], backend: ContextBackend
    ) -> Any:
        """Run one attempt of `step` in a child; returns its result or raises ChildFailure.

        `params` is the `execute` params without `env` and `last`, which come from the step.
        """
        async with self._slots[step.runtime], self._step_slot(step):
            worker = await self._worker_for(step)
            last = worker.jobs_done + 1 >= step.reuse
            params = {**params, "env": declared_environment(step.env), "last": last}
            binding = JobBinding(backend, step.name)
            worker.job = binding
            worker.jobs_done += 1
            try:
                return await self._watch(worker, step, params)
            finally:
                await self._after_job(worker, step, binding, last)

    # -- one attempt ---------------------------------------------------------------------------

    async def _watch(self, worker: Worker, step: StepDefinition, params: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        process = worker.process
        if step.memory_mb and step.runtime == "python":
            process.limit_data(step.memory_mb * MIB)
        if step.cpu_seconds:
            process.limit_cpu(step.cpu_seconds)
        call = asyncio.create_task(worker.execute(params))
        reason: ChildFailure | None = None
        deadline = loop.time() + step.timeout if step.timeout else None
        escalations = 0  # past the deadline: cancel, then SIGTERM, then SIGKILL
        while True:
            await asyncio.wait(
                {call, process.exited}, timeout=WATCH_INTERVAL, return_when=asyncio.FIRST_COMPLETED
            )
            if call.done():
                break
            if process.exited.done():
                await asyncio.wait({call}, timeout=ANSWER_AFTER_EXIT)
                if not call.done():
                    worker.disconnect()
                    await asyncio.wait({call})
                break
            now = loop.time()
            if reason is None and step.memory_mb:
                rss = process.rss_bytes()
                if rss is not None and rss > step.memory_mb * MIB:
                    reason = failures.memory_exceeded(step.memory_mb)
                    process.kill()
            if reason is None and worker.silent_for > HEARTBEATS_MISSED * self._interval:
                reason = failures.unresponsive(worker.silent_for)
                process.kill()
            if deadline is not None and now >= deadline:
                if reason is None:
                    reason = failures.timed_out(step.name, step.timeout or 0)
                await self._escalate(worker, escalations)
                escalations += 1
                deadline = now + self._grace
        return await self._outcome(worker, step, call, reason)

    @staticmethod
    async def _escalate(worker: Worker, escalations: int) -> None:
        if escalations == 0:
            await worker.notify("cancel", {"reason": "timed out"})
        elif escalations == 1:
            worker.process.send_signal(signal.SIGTERM)
        else:
            worker.process.kill()

    async def _outcome(
        self,
        worker: Worker,
        step: StepDefinition,
        call: asyncio.Task[Any],
        reason: ChildFailure | None,
    ) -> Any:
        try:
            answer = call.result()
        except RemoteError as exc:
            raise reason or self._remote_failure(worker, step, exc) from None
        except ConnectionError:
            if reason is not None:
                raise reason from None
            status = await self._exit_status(worker)
            raise self._crash(worker, step, status) from None
        if reason is not None:
            raise reason  # answered, but only after the host gave up on it
        if not isinstance(answer, dict) or "result" not in answer:
            raise failures.protocol_failure("execute answered without a result")
        return answer["result"]

    def _remote_failure(
        self, worker: Worker, step: StepDefinition, exc: RemoteError
    ) -> ChildFailure:
        if exc.code in (ErrorCode.STEP_FAILED, ErrorCode.HANDLER_NOT_LOADABLE):
            failure = ChildFailure.from_data(exc.data, exc.message)
            if failure.type == "MemoryError" and step.memory_mb:
                return failures.memory_exceeded(step.memory_mb, failure.stack)
            return failure
        if exc.code in (ErrorCode.STEP_TIMED_OUT, ErrorCode.CANCELLED) and step.timeout:
            return failures.timed_out(step.name, step.timeout)
        return failures.protocol_failure(f"{exc.message} ({exc.code})")

    def _crash(self, worker: Worker, step: StepDefinition, status: Any) -> ChildFailure:
        tail = worker.tail()
        if status is None:
            return failures.crashed("the worker closed its connection", tail)
        if status.signal == signal.SIGXCPU and step.cpu_seconds:
            return failures.cpu_exceeded(step.cpu_seconds)
        if step.memory_mb and ("heap out of memory" in tail or "MemoryError" in tail):
            return failures.memory_exceeded(step.memory_mb, tail)
        return failures.crashed(status.describe(), tail)

    async def _exit_status(self, worker: Worker) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(worker.process.exited), self._grace)
        except TimeoutError:
            worker.process.kill()
            return None

    async def _after_job(
        self, worker: Worker, step: StepDefinition, binding: JobBinding, last: bool
    ) -> None:
        if last or not worker.process.alive:
            # The receipt of the last answer: the child exits once it has it.
            await worker.notify("shutdown")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(worker.process.exited), self._grace)
            worker.process.kill()
            await worker.output_finished(OUTPUT_DRAIN)
        worker.job = None
        if binding.output.dropped:
            binding.backend.log(
                "warning",
                f"{binding.output.dropped} bytes of output were not kept "
                f"(at most {binding.output.limit} bytes per attempt)",
                {},
            )
        if binding.dropped_logs:
            binding.backend.log(
                "warning",
                f"{binding.dropped_logs} log and progress messages were not kept "
                f"(at most {MAX_LOGS_PER_ATTEMPT} per attempt)",
                {},
            )
        if worker.process.alive:
            self._reusable.setdefault((step.file, step.function), collections.deque()).append(
                worker
            )

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
                PythonLauncher(interpreter, step.preload, self._functions_dir)
                if step.runtime == "python"
                else NodeLauncher(self._commands, step.memory_mb, self._functions_dir)
            )
            self._launchers[key] = launcher
            pool = self._pools[key] = WarmPool(
                "/".join(str(part) for part in key if part), lambda: self._start(launcher), size
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
        worker.output_tasks = [
            OutputReader("stdout", stdout, worker.on_output).task,
            OutputReader("stderr", stderr, worker.on_output).task,
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
        for launcher in self._launchers.values():
            await launcher.close()
        for router in self._routers.values():
            await router.close()
        if self._context is not None:
            self._context.term()
        if self._directory is not None:
            self._directory.remove()
