"""Anchor: raw PgQueuer 1.6 draining N pre-enqueued no-op jobs, defaults, psycopg driver.

The only module of the bench that imports PgQueuer. Setup (schema, enqueue in batches) runs on
its own connection and is not timed. The consumer is a `QueueManager` on one autocommit psycopg
connection with `run()` defaults (batch_size=10) in drain mode.

Clocks start just before `qm.run(...)`; completions are timed when PgQueuer commits them (the
status-log flush that moves a job out of the queue table):

- `seconds`: run start -> last completion committed. `jobs_per_s` (the anchor) uses it.
- `steady_jobs_per_s`: the rate between the 10 % and 90 % completion marks. It leaves out a fixed
  ~1 s start-up stall of the psycopg driver: until NOTIFY traffic flows, a query waits up to 1 s
  for the connection lock that the driver's watcher holds in `notifies(timeout=1.0)`.
- `run_seconds`: run start -> `qm.run` returned. After the queue empties, the same lock makes
  PgQueuer's three probe queries wait 1 s each, and the driver's exit waits for the watcher once
  more: a fixed ~4 s of shutdown, not throughput, so it is reported apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from pgqueuer.db import PsycopgDriver
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

ENTRYPOINT = "noop"
ENQUEUE_BATCH = 1000


@dataclass(frozen=True)
class DrainResult:
    jobs: int
    seconds: float  # run start -> last completion committed
    run_seconds: float  # run start -> qm.run returned
    enqueue_seconds: float  # untimed setup, for information
    steady_jobs_per_s: float  # between the 10 % and 90 % completion marks

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.seconds

    @property
    def jobs_per_s_until_exit(self) -> float:
        return self.jobs / self.run_seconds

    @property
    def shutdown_seconds(self) -> float:
        return self.run_seconds - self.seconds


class _CompletionClock(Queries):
    """`Queries` that notes when each status-log flush commits and the running count of jobs."""

    def __init__(self, driver: PsycopgDriver) -> None:
        super().__init__(driver)
        self.flushes: list[tuple[float, int]] = []  # (perf_counter, jobs logged so far)
        self.logged = 0

    async def log_jobs(self, job_status: list[Any]) -> None:
        await super().log_jobs(job_status)
        self.logged += len(job_status)
        self.flushes.append((time.perf_counter(), self.logged))

    def rate_between(self, low: float, high: float) -> float | None:
        """Jobs/s between the flushes that first reach `low` and `high` of all jobs logged."""
        first = next(f for f in self.flushes if f[1] >= low * self.logged)
        last = next(f for f in self.flushes if f[1] >= high * self.logged)
        if last[0] <= first[0]:
            return None  # too few flushes to tell
        return (last[1] - first[1]) / (last[0] - first[0])


async def enqueue_noop_jobs(url: str, jobs: int, batch: int = ENQUEUE_BATCH) -> float:
    """Install PgQueuer's schema in the (empty) database and enqueue `jobs` no-op jobs."""
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        queries = Queries(PsycopgDriver(conn))
        await queries.install()
        for offset in range(0, jobs, batch):
            count = min(batch, jobs - offset)
            await queries.enqueue([ENTRYPOINT] * count, [None] * count, [0] * count)
    return time.perf_counter() - started


async def pgqueuer_drain(url: str, jobs: int) -> DrainResult:
    """Enqueue `jobs` no-op jobs into the empty database at `url`, then time draining them."""
    enqueue_seconds = await enqueue_noop_jobs(url, jobs)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        queries = _CompletionClock(PsycopgDriver(conn))
        manager = QueueManager(queries)
        handled = 0

        @manager.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            nonlocal handled
            handled += 1

        started = time.perf_counter()
        await manager.run(mode=QueueExecutionMode.drain)
        returned = time.perf_counter()

    seconds = queries.flushes[-1][0] - started
    if handled != jobs or queries.logged != jobs:
        raise RuntimeError(
            f"pgqueuer drain: enqueued {jobs}, handled {handled}, logged {queries.logged}"
        )
    return DrainResult(
        jobs=jobs,
        seconds=seconds,
        run_seconds=returned - started,
        enqueue_seconds=enqueue_seconds,
        steady_jobs_per_s=queries.rate_between(0.1, 0.9) or jobs / seconds,
    )
