"""One attempt in a child: send `execute`, enforce the step's limits until the answer or the
child's end, stop it when asked to (its run ended), and tell how it ended."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from flowhost.engine.definitions import StepDefinition
from flowhost.workers import failures
from flowhost.workers.cancellation import Cancellation
from flowhost.workers.failures import ChildFailure
from flowhost.workers.processes import ExitStatus
from flowhost.workers.worker import Worker
from flowhost_worker.protocol import ErrorCode
from flowhost_worker.rpc import RemoteError

MIB = 1024 * 1024
# How often a running attempt's memory, heartbeat and deadline are checked.
WATCH_INTERVAL = 0.1
# A child's answer may trail its exit through the socket by a moment.
ANSWER_AFTER_EXIT = 0.2
HEARTBEATS_MISSED = 3


class Attempt:
    """Runs `params` (an `execute`) in `worker` for `step`; `run()` returns the handler's
    result or raises ChildFailure. A request on `cancellation` stops the child the way a
    timeout does: the protocol's `cancel`, then SIGTERM, then SIGKILL, `grace` apart."""

    def __init__(
        self,
        worker: Worker,
        step: StepDefinition,
        *,
        heartbeat_interval: float,
        grace: float,
        cancellation: Cancellation | None = None,
    ) -> None:
        self.worker = worker
        self.step = step
        self._interval = heartbeat_interval
        self._grace = grace
        self._cancellation = cancellation or Cancellation()
        # Why the host stopped the child (timeout, memory, silence), once it did: such a child
        # is never given another job.
        self.stopped: ChildFailure | None = None
        # Whether the child answered `execute` (a result or an error), having flushed its
        # output first: then the attempt's output is all in the pipes already.
        self.answered = False

    async def run(self, params: dict[str, Any]) -> Any:
        process, step = self.worker.process, self.step
        if step.memory_mb and step.runtime == "python":
            process.limit_data(step.memory_mb * MIB)
        if step.cpu_seconds:
            process.limit_cpu(step.cpu_seconds)
        call = asyncio.create_task(self.worker.execute(params))
        try:
            reason = self.stopped = await self._supervise(call)
        except asyncio.CancelledError:
            # The attempt was abandoned (the host is stopping): so is its child.
            process.kill()
            call.cancel()
            raise
        return await self._outcome(call, reason)

    async def _supervise(self, call: asyncio.Task[Any]) -> ChildFailure | None:
        """Wait for the answer or the child's end, enforcing the limits meanwhile; returns why
        the host stopped the child, if it did."""
        loop = asyncio.get_running_loop()
        worker, step, process = self.worker, self.step, self.worker.process
        reason: ChildFailure | None = None
        deadline = loop.time() + step.timeout if step.timeout else None
        escalations = 0  # past the deadline: cancel, then SIGTERM, then SIGKILL
        why = "timed out"
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
            if reason is None and self._cancellation.reason is not None:
                why = self._cancellation.reason
                reason = failures.canceled(why)
                deadline = now  # stop it now, as if its deadline had passed
            if deadline is not None and now >= deadline:
                if reason is None:
                    reason = failures.timed_out(step.name, step.timeout or 0)
                await self._escalate(escalations, why)
                escalations += 1
                deadline = now + self._grace
        return reason

    async def _escalate(self, escalations: int, why: str) -> None:
        if escalations == 0:
            await self.worker.notify("cancel", {"reason": why})
        elif escalations == 1:
            self.worker.process.send_signal(signal.SIGTERM)
        else:
            self.worker.process.kill()

    async def _outcome(self, call: asyncio.Task[Any], reason: ChildFailure | None) -> Any:
        try:
            answer = call.result()
        except RemoteError as exc:
            self.answered = True
            raise reason or self._remote_failure(exc) from None
        except ConnectionError:
            if reason is not None:
                raise reason from None
            raise self._crash(await self._exit_status()) from None
        self.answered = True
        if reason is not None:
            raise reason  # answered, but only after the host gave up on it
        if not isinstance(answer, dict) or "result" not in answer:
            raise failures.protocol_failure("execute answered without a result")
        return answer["result"]

    def _remote_failure(self, exc: RemoteError) -> ChildFailure:
        step = self.step
        if exc.code in (ErrorCode.STEP_FAILED, ErrorCode.HANDLER_NOT_LOADABLE):
            failure = ChildFailure.from_data(exc.data, exc.message)
            if failure.type == "MemoryError" and step.memory_mb:
                return failures.memory_exceeded(step.memory_mb, failure.stack)
            return failure
        if exc.code in (ErrorCode.STEP_TIMED_OUT, ErrorCode.CANCELLED) and step.timeout:
            return failures.timed_out(step.name, step.timeout)
        return failures.protocol_failure(f"{exc.message} ({exc.code})")

    def _crash(self, status: ExitStatus | None) -> ChildFailure:
        step, tail = self.step, self.worker.tail()
        if status is None:
            return failures.crashed("the worker closed its connection", tail)
        if status.signal == signal.SIGXCPU and step.cpu_seconds:
            return failures.cpu_exceeded(step.cpu_seconds)
        if step.memory_mb and ("heap out of memory" in tail or "MemoryError" in tail):
            return failures.memory_exceeded(step.memory_mb, tail)
        return failures.crashed(status.describe(), tail)

    async def _exit_status(self) -> ExitStatus | None:
        exited = self.worker.process.exited
        try:
            return await asyncio.wait_for(asyncio.shield(exited), self._grace)
        except TimeoutError:
            self.worker.process.kill()
            return None
