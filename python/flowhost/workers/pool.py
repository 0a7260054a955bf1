"""Children started ahead of need, so that a job does not wait for a process to start."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

from flowhost.workers.quiet import Quiet
from flowhost.workers.worker import Worker

logger = logging.getLogger(__name__)

# After a child fails to start, the pool waits this long before starting spares again (a
# broken interpreter must not turn into a fork loop).
RETRY_AFTER_FAILURE = 2.0
# How long after handing out an idle child its replacement is started, when the pool runs low
# (fewer than half its size left); otherwise the replacement waits until steps are quiet
# (flowhost.workers.quiet), at most REFILL_AT_MOST.
REFILL_DELAY = 0.005
REFILL_AT_MOST = 1.0
# A child that has not said hello by then is killed (a Node child starts in about 0.1 s).
HELLO_TIMEOUT = 30.0


class WarmPool:
    """Keeps `size` ready children of one kind; `acquire` takes one or starts one."""

    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[Worker]],
        size: int,
        quiet: Quiet | None = None,
    ) -> None:
        self.name = name
        self._start = start
        self.size = size
        self._quiet = quiet
        self._deferred: asyncio.Task[None] | None = None  # a refill waiting for quiet
        self._idle: collections.deque[Worker] = collections.deque()
        self._starting: set[asyncio.Task[None]] = set()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._paused_until = 0.0
        self._closed = False

    @property
    def idle(self) -> list[Worker]:
        return list(self._idle)

    async def acquire(self) -> Worker:
        """A ready child: an idle one, else the next spare that becomes ready (it has a head
        start on any child started now), else one started for this caller."""
        while True:
            while self._idle:
                worker = self._idle.popleft()
                if worker.usable:
                    self._replace_later()
                    return worker
            self.refill()
            if len(self._starting) <= len(self._waiters):
                break  # every spare on its way is promised to an earlier caller
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return await self._ready(await self._start())

    def _replace_later(self) -> None:
        """Replace a child handed out, not at once: starting one (a fork, for Node a process
        spawn) must not delay the job the child is about to get, nor, while the pool has
        spares enough, what the run does after it."""
        if self._quiet is None or len(self._idle) + len(self._starting) < max(1, self.size // 2):
            asyncio.get_running_loop().call_later(REFILL_DELAY, self.refill)
        elif self._deferred is None or self._deferred.done():
            self._deferred = asyncio.create_task(
                self._refill_when_quiet(self._quiet), name=f"flowhost-pool-refill {self.name}"
            )

    async def _refill_when_quiet(self, quiet: Quiet) -> None:
        await quiet.wait(REFILL_AT_MOST)
        self.refill()

    def refill(self) -> None:
        loop = asyncio.get_running_loop()
        if self._closed or loop.time() < self._paused_until:
            return
        while len(self._idle) + len(self._starting) < self.size:
            task = asyncio.create_task(self._add_spare(), name=f"flowhost-pool {self.name}")
            self._starting.add(task)
            task.add_done_callback(self._spare_done)

    def _spare_done(self, task: asyncio.Task[None]) -> None:
        # Whether it came up or not, the first caller waiting for a spare looks again.
        self._starting.discard(task)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _add_spare(self) -> None:
        try:
            worker = await self._ready(await self._start())
        except Exception as exc:
            logger.warning("could not start a spare %s worker: %s", self.name, exc)
            self._paused_until = asyncio.get_running_loop().time() + RETRY_AFTER_FAILURE
            return
        if self._closed:
            worker.process.kill()
            return
        self._idle.append(worker)

    @staticmethod
    async def _ready(worker: Worker) -> Worker:
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), HELLO_TIMEOUT)
        except BaseException:
            worker.process.kill()
            raise
        return worker

    async def close(self) -> list[Worker]:
        """Stop starting spares; returns the idle children for the caller to stop."""
        self._closed = True
        if self._deferred is not None:
            self._deferred.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._deferred
        if self._starting:
            await asyncio.wait(self._starting)
        idle, self._idle = list(self._idle), collections.deque()
        return idle
