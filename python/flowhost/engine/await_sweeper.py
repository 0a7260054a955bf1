"""The await sweeper: every host resolves and times out the awaits that are due.

It takes due awaits (their resolve or timeout time passed) in batches, locking their runs with
SKIP LOCKED so that the sweepers of several hosts share the work without waiting on each other,
then sleeps until the next due time. Registering an await that is due before every other one
sends a NOTIFY that wakes it, so a time await fires within milliseconds of its time even on an
idle host. On start it first takes everything overdue: an await that fell due while every host
was down resolves (or times out) as soon as one comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

import psycopg
from psycopg import sql

from flowhost.db.database import Connection, Database
from flowhost.engine.await_resolution import AwaitSettlement, due_resolution
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.orchestrator import MOVING, EmitListener
from flowhost.engine.wakeups import first_of
from flowhost.errors import DatabaseUnavailableError
from flowhost.store import awaits as store

logger = logging.getLogger(__name__)

CHANNEL = "flowhost_awaits"
# Runs (with their due awaits) handled per transaction.
BATCH = 100
# The longest sleep between two looks (a safety net: NOTIFY wakes a sweeper for new awaits).
MAX_SLEEP = 30.0
# Awaits are due but other transactions hold their runs: look again this soon.
BUSY_RETRY = 0.05
# A batch failed for another reason than the database being away: try again after this long
# (the failure is logged; the host goes on serving).
ERROR_RETRY = 1.0


class AwaitSweeper:
    def __init__(
        self,
        database: Database,
        flows: Callable[[], Mapping[str, FlowDefinition]],
        *,
        batch: int = BATCH,
        on_emit: EmitListener | None = None,
    ) -> None:
        self._database = database
        self._flows = flows
        self._batch = batch
        self._on_emit = on_emit
        self._wake = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep until `stop` is set. Raises the database's errors (the host reconnects)."""
        async with self._database.dedicated_connection() as listen:
            await listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            listener = asyncio.create_task(self._listen(listen), name="flowhost-await-listen")
            try:
                await self._sweep_until(stop, listener)
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def _sweep_until(self, stop: asyncio.Event, listener: asyncio.Task[None]) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                while await self.sweep_once() >= self._batch and not stop.is_set():
                    pass
                async with self._database.connection() as conn:
                    wait = await store.next_due(conn)
            except (psycopg.OperationalError, DatabaseUnavailableError):
                raise
            except Exception:
                logger.exception("sweeping due awaits failed; trying again")
                wait = ERROR_RETRY
            if wait is None:
                wait = MAX_SLEEP
            elif wait <= 0:
                wait = BUSY_RETRY  # due, but held by other transactions
            await first_of(stop, self._wake, listener, min(wait, MAX_SLEEP), name="sweeper")
            if listener.done():
                listener.result()  # the listening connection broke: reconnect

    async def _listen(self, conn: Connection) -> None:
        async for _note in conn.notifies():
            self._wake.set()

    async def sweep_once(self) -> int:
        """One batch in one transaction: returns how many runs it handled."""
        async with self._database.transaction() as conn:
            locked = await store.lock_runs_with_due_awaits(conn, self._batch)
            if not locked:
                return 0
            settlement = AwaitSettlement(conn, locked, self._flows(), on_emit=self._on_emit)
            ended = [run_id for run_id, run in locked.items() if run.status not in MOVING]
            await settlement.cancel(ended)
            live = [run_id for run_id in locked if run_id not in ended]
            for row, resolves in await store.due_awaits_of_runs(conn, live):
                if resolves:
                    await settlement.resolve(row, due_resolution(row))
                else:
                    await settlement.time_out(row)
            await settlement.finish()
        return len(locked)
