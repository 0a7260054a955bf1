"""PgQueuer adapter: installing its schema, enqueueing in the caller's transaction, consuming.

Every PgQueuer import of flowhost lives in this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, cast

import psycopg
from pgqueuer.adapters.persistence.qb import QueryQueueBuilder
from pgqueuer.db import PsycopgDriver
from pgqueuer.errors import RetryRequested
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode
from psycopg import sql

from flowhost import metrics
from flowhost.db.database import Connection
from flowhost.queue.jobs import (
    AWAITS_ENTRYPOINT,
    QueueJob,
    RequeueJob,
    StartJob,
    StepJob,
    decode_job,
    entrypoint_for,
)

logger = logging.getLogger(__name__)

JobHandler = Callable[[QueueJob], Awaitable[None]]


class SplitPsycopgDriver(PsycopgDriver):
    """PgQueuer's psycopg driver with LISTEN on a connection of its own.

    The stock driver waits for notifications with `notifies(timeout=1.0)` on the connection it
    also queries on, and psycopg holds the connection lock while waiting: every dequeue then
    waits up to a second behind the watcher. Listening on a second connection removes the wait.
    """

    def __init__(
        self,
        connection: Connection,
        listen_connection: Connection,
        on_lost: Callable[[], None],
    ) -> None:
        super().__init__(connection)  # type: ignore[arg-type]
        self._listen_connection = listen_connection
        self._on_lost = on_lost
        # Set when the listening connection broke: the consumer stops and raises it.
        self.lost: psycopg.OperationalError | None = None

    async def add_listener(
        self, channel: str, callback: Callable[[str | bytes | bytearray], None]
    ) -> None:
        if channel not in self._listeners:
            await self._listen_connection.execute(
                sql.SQL("LISTEN {}").format(sql.Identifier(channel))
            )
            self._listeners[channel] = []
        self._listeners[channel].append(callback)
        if self._watcher is None:
            self._watcher = asyncio.create_task(self.watch_notifies(), name="flowhost-listen")
            self._tm.add(self._watcher)

    async def watch_notifies(self) -> None:
        try:
            while not self.shutdown.is_set():
                async for note in self._listen_connection.notifies(timeout=0.5, stop_after=1):
                    for callback in list(self._listeners.get(note.channel, [])):
                        try:
                            callback(note.payload)
                        except Exception:
                            logger.exception("NOTIFY callback failed on channel %s", note.channel)
        except psycopg.OperationalError as exc:
            # Without notifications the consumer would only poll: stop it, so its host
            # reconnects both connections.
            self.lost = exc
            self._on_lost()

    async def remove_listener(
        self, channel: str, callback: Callable[[str | bytes | bytearray], None]
    ) -> None:
        callbacks = self._listeners.get(channel, [])
        if callback in callbacks:
            callbacks.remove(callback)


def _text_payload(
    callback: Callable[[str], None],
) -> Callable[[str | bytes | bytearray], None]:
    def deliver(payload: str | bytes | bytearray) -> None:
        callback(payload if isinstance(payload, str) else bytes(payload).decode())

    return deliver


def _queries(conn: Connection) -> Queries:
    # PgQueuer's driver is typed for tuple rows; it makes its own dict-row cursors anyway.
    return Queries(PsycopgDriver(cast("psycopg.AsyncConnection[Any]", conn)))


async def install_queue_schema(conn: Connection) -> bool:
    """Install PgQueuer's tables if absent, else apply its pending upgrades; True if installed."""
    queries = _queries(conn)
    if await queries.schema_is_installed():
        await queries.upgrade()
        return False
    await queries.install()
    return True


def queue_schema_sql() -> str:
    from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment

    return QueryBuilderEnvironment().build_install_query()


async def enqueue_steps(conn: Connection, jobs: Sequence[StepJob | StartJob]) -> None:
    """Enqueue on `conn`, so the jobs commit or roll back with the caller's transaction.

    Only flowhost.engine.scheduling calls this: it decides what may be enqueued (flow control).
    Its SQL twin, for jobs granted inside a trigger, is `flowhost.fc_enqueue` (migration 0005).
    """
    await enqueue_jobs(conn, jobs)


async def enqueue_jobs(conn: Connection, jobs: Sequence[QueueJob]) -> None:
    """Enqueue jobs of any kind on `conn`, in the caller's transaction. Step and start jobs
    go through flowhost.engine.scheduling instead (flow control).

    PgQueuer's own enqueue statement, with dedupe-key conflicts skipped; sent without reading
    its answer (the job ids), so that on a connection in pipeline mode it travels with the
    COMMIT that follows (`Queries.enqueue` reads them: a round trip of its own)."""
    if not jobs:
        return
    cursor = psycopg.AsyncRawCursor(conn)
    await cursor.execute(
        _ENQUEUE_SKIPPING_DUPLICATES,
        (
            [job.priority for job in jobs],
            [job.entrypoint for job in jobs],
            [job.encode() for job in jobs],
            [timedelta(seconds=max(job.delay, 0.0)) for job in jobs],
            [job.dedupe_key for job in jobs],
            # PgQueuer's job headers (its tracing); flowhost sets none.
            ["null"] * len(jobs),
        ),
    )


_ENQUEUE_SKIPPING_DUPLICATES = QueryQueueBuilder().build_enqueue_query("skip")


async def queued_jobs(conn: Connection, flow: str) -> int:
    """Jobs of `flow` waiting or running (for status displays and tests)."""
    queries = _queries(conn)
    return await queries.queued_work([entrypoint_for(flow)])  # type: ignore[list-item]


class StepConsumer:
    """Takes jobs of the served flows (and the await jobs any host runs) off the queue and
    hands them to `handler`."""

    def __init__(
        self,
        conn: Connection,
        listen_conn: Connection,
        handler: JobHandler,
        *,
        concurrency: int,
        batch_size: int,
        heartbeat_timeout: float,
        notifications: Mapping[str, Callable[[str], None]] | None = None,
    ) -> None:
        """`notifications`: channel -> callback, for NOTIFYs of other channels to hear on the
        consumer's listening connection (its loss reconnects the consumer)."""
        self._handler = handler
        self._notifications = dict(notifications or {})
        self._driver = SplitPsycopgDriver(conn, listen_conn, on_lost=self.stop)
        self._manager = QueueManager(Queries(self._driver))
        self._batch_size = max(1, batch_size)
        # `concurrency` bounds the steps executing at once. PgQueuer's own cap counts a job as
        # in flight until its buffered completion is logged (up to 0.1 s later), and a capped
        # dequeue loop sleeps 0.1 s: without headroom for those, the cap throttles throughput.
        self._executing = asyncio.Semaphore(concurrency)
        self._picked_limit = concurrency + 4 * self._batch_size
        self._heartbeat_timeout = timedelta(seconds=heartbeat_timeout)

    def serve(self, flows: Sequence[str]) -> None:
        """Start taking jobs of `flows` (may be called again while running, after a reload)."""
        for name in [AWAITS_ENTRYPOINT, *(entrypoint_for(flow) for flow in flows)]:
            if name not in self._manager.entrypoint_registry:
                self._manager.entrypoint(name, accepts_context=False)(self._dispatch)

    async def _dispatch(self, job: Job) -> None:
        queued = decode_job(job.payload)
        if isinstance(queued, StepJob):
            metrics.observe_enqueue_to_start(queued.flow, max(job.created, job.execute_after))
        async with self._executing:
            try:
                await self._handler(queued)
            except RequeueJob as requeue:
                logger.log(
                    logging.DEBUG if requeue.expected else logging.WARNING,
                    "job %s (%s) put back: %s",
                    job.id,
                    job.entrypoint,
                    requeue.reason,
                )
                raise RetryRequested(timedelta(seconds=requeue.delay), requeue.reason) from requeue

    async def run(self, *, drain: bool = False) -> None:
        for channel, callback in self._notifications.items():
            # The queue manager's run stops these listeners with its own (driver exit).
            await self._driver.add_listener(channel, _text_payload(callback))
        await self._manager.run(
            batch_size=self._batch_size,
            max_concurrent_tasks=self._picked_limit,
            heartbeat_timeout=self._heartbeat_timeout,
            mode=QueueExecutionMode.drain if drain else QueueExecutionMode.continuous,
            dequeue_timeout=timedelta(seconds=5),
        )
        if self._driver.lost is not None:
            raise self._driver.lost

    def stop(self) -> None:
        self._manager.shutdown.set()
