"""When a host's steps are quiet: the moment for child housekeeping that can wait.

Starting a spare Python child costs about 5 ms of CPU (the zygote's fork, then the child's
copy-on-write page faults and its event loop, ZeroMQ context and hello) and a child's exit about
1 to 2 ms (tearing down its address space), measured on a 2-core machine. Done right after an
attempt, as they were, they compete for the CPU with what the run does next: recording the
attempt's outcome, claiming the next step, starting it. On a small machine that was most of
the latency from one step's `ctx.emit` to the next step's start.

So that work waits until no step has been running for `period` seconds (a chain of steps has
ended), at most for its own bound, and not at all when something needs it done (`hurry`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any


class Quiet:
    def __init__(self, period: float) -> None:
        self.period = period
        self._running = 0
        self._last = 0.0  # loop time an attempt last started or ended
        self._wakers: set[asyncio.Future[Any]] = set()  # resolved True: hurry

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Around a step's work (claim to recorded outcome): the host is not quiet meanwhile."""
        self._running += 1
        self._last = asyncio.get_running_loop().time()
        try:
            yield
        finally:
            self._running -= 1
            self._last = asyncio.get_running_loop().time()
            if not self._running:
                # Waiters start counting the quiet period from now. (While steps run, they
                # wait for this or their bound: a busy host does not wake them per step.)
                self._wake(hurry=False)

    @property
    def running(self) -> int:
        return self._running

    def hurry(self) -> None:
        """Whatever waits for quiet is needed now (an attempt waits for a child's slot)."""
        self._wake(hurry=True)

    async def wait(self, at_most: float, unless: asyncio.Future[Any] | None = None) -> None:
        """Return once no step has run for `period` seconds, after `at_most` seconds, on
        `hurry()`, or once `unless` is done, whichever comes first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + at_most
        while unless is None or not unless.done():
            now = loop.time()
            until = deadline if self._running else min(deadline, self._last + self.period)
            if now >= until:
                return
            waker: asyncio.Future[Any] = loop.create_future()
            self._wakers.add(waker)
            try:
                await asyncio.wait(
                    {waker} if unless is None else {waker, unless},
                    timeout=until - now,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                self._wakers.discard(waker)
            if waker.done() and waker.result():
                return

    def _wake(self, *, hurry: bool) -> None:
        for waker in self._wakers:
            if not waker.done():
                waker.set_result(hurry)
