"""Child housekeeping waits for quiet: no step busy for a period, within a bound, or on hurry."""

from __future__ import annotations

import asyncio

from flowhost.workers.pool import WarmPool
from flowhost.workers.quiet import Quiet


async def waited(quiet: Quiet, at_most: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await quiet.wait(at_most)
    return loop.time() - started


async def test_quiet_comes_a_period_after_the_last_step_ended() -> None:
    quiet = Quiet(0.05)
    assert await waited(quiet, 5) < 0.05  # nothing ever ran: quiet already
    with quiet.busy():
        waiting = asyncio.create_task(waited(quiet, 5))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # a step is busy: never quiet meanwhile
        assert quiet.running == 1
    took = await waiting
    assert 0.24 <= took < 5
    assert quiet.running == 0


async def test_a_new_step_restarts_the_period_and_the_bound_still_holds() -> None:
    quiet = Quiet(0.1)
    with quiet.busy():
        pass
    waiting = asyncio.create_task(waited(quiet, 0.3))
    for _ in range(6):  # steps every 60 ms: never 100 ms of quiet
        await asyncio.sleep(0.06)
        with quiet.busy():
            pass
    took = await waiting
    assert 0.29 <= took < 5


async def test_hurry_ends_every_wait_at_once() -> None:
    quiet = Quiet(10)
    with quiet.busy():
        waits = [asyncio.create_task(waited(quiet, 60)) for _ in range(3)]
        await asyncio.sleep(0.05)
        quiet.hurry()
        took = await asyncio.wait_for(asyncio.gather(*waits), 5)
    assert max(took) < 5


class ReadySpare:
    """Stands for a started child: ready at once, alive."""

    def __init__(self) -> None:
        self.ready = asyncio.get_running_loop().create_future()
        self.ready.set_result({})
        self.usable = True


async def test_a_pool_replaces_spares_when_quiet_or_at_once_when_it_runs_low() -> None:
    starts = 0

    async def start() -> ReadySpare:
        nonlocal starts
        starts += 1
        return ReadySpare()

    async def full() -> None:
        async with asyncio.timeout(5):
            while len(pool.idle) < 4:
                await asyncio.sleep(0.01)

    quiet = Quiet(0.05)
    pool = WarmPool("test", start, 4, quiet)  # type: ignore[arg-type]
    pool.refill()
    await full()
    assert starts == 4
    with quiet.busy():  # a chain of steps runs: a spare taken is not replaced meanwhile
        await pool.acquire()
        await asyncio.sleep(0.2)
        assert starts == 4
        await pool.acquire()
        await pool.acquire()  # one left: fewer than half the pool, replaced at once
        await full()
        assert starts == 7
        await pool.acquire()
    await full()  # quiet again
    assert starts == 8
    await pool.close()
