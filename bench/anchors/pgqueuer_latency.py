"""Anchor: raw PgQueuer 1.6, one job at a time on an idle consumer: enqueue → handler start.

The producer and the consumer run in this process, each on its own connection (the consumer's
`QueueManager` runs with defaults in continuous mode). For each job the producer notes the
wall clock, enqueues one job (autocommit: the enqueue commits at once, and PgQueuer's trigger
NOTIFYs the consumer), and waits until the handler has run; then it pauses `gap` seconds, so
that every job finds the consumer idle and listening. The latency is the handler's first
statement minus the producer's clock before `enqueue`.

The consumer listens on a connection of its own (`driver="split"`, the default). PgQueuer's
stock psycopg driver waits for notifications on the connection it queries on, and a dequeue
that loses the race for that connection's lock waits for the next NOTIFY (measured-floors §2b:
one job in five then waits ~25 ms): that is the driver's lock, not the queue's latency, so the
anchor leaves it out. `driver="stock"` measures it anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

import psycopg
from pgqueuer.db import PsycopgDriver
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries

from flowhost.queue.pgqueuer_queue import SplitPsycopgDriver

ENTRYPOINT = "latency"


async def pgqueuer_latency(
    url: str,
    jobs: int,
    *,
    gap: float = 0.02,
    warmup: int = 20,
    driver: Literal["split", "stock"] = "split",
) -> list[float]:
    """Install PgQueuer in the empty database at `url`; returns `jobs` latencies in ms (after
    `warmup` untimed jobs)."""
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as producer,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as consumer,
        await psycopg.AsyncConnection.connect(url, autocommit=True) as listener,
    ):
        queries = Queries(PsycopgDriver(producer))
        await queries.install()
        stop = asyncio.Event()
        manager = QueueManager(
            Queries(
                SplitPsycopgDriver(consumer, listener, on_lost=stop.set)
                if driver == "split"
                else PsycopgDriver(consumer)
            )
        )
        started: asyncio.Queue[float] = asyncio.Queue()

        @manager.entrypoint(ENTRYPOINT)
        async def handler(job: Job) -> None:
            started.put_nowait(time.time())

        running = asyncio.create_task(manager.run())
        latencies: list[float] = []
        try:
            for index in range(warmup + jobs):
                if stop.is_set():
                    raise RuntimeError("pgqueuer latency: the consumer lost its connection")
                await asyncio.sleep(gap)
                asked = time.time()
                await queries.enqueue([ENTRYPOINT], [None], [0])
                began = await asyncio.wait_for(started.get(), 10)
                if index >= warmup:
                    latencies.append((began - asked) * 1000)
        finally:
            manager.shutdown.set()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    return latencies
