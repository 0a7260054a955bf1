"""One LISTEN per process for every open stream, one read per wake-up for all of them.

Each statement that appends events announces the range of ids it appended at its commit
(`NOTIFY flowhost_events '<first>:<last>'`, a statement-level trigger on flowhost.events: one
notification per completion batch, not per event or per run), while at least one process
with streams open is registered in flowhost.stream_listeners: without streams, the engine's
statements pay no NOTIFY (which wakes every listening backend). The fan-out listens on one
connection of its own; each time it wakes, it reads the announced ranges once, with one
statement, for the runs that have open streams (and the run status changes, when a stream of
every run is open), and hands each subscription its share. Reads are one at a time, at most
every COALESCE_INTERVAL: announcements that arrive meanwhile are read together.

A range is exactly what one committed statement appended, so live delivery has no gap even
when transactions commit out of id order (the range may also hold rows of other statements:
subscribers drop ids they already have, see follow.SeenIds).

Subscriptions are bounded: one whose consumer falls more than `limit` events behind stops
receiving (`lagged`) and catches up from the events table, so a slow stream neither blocks
the others nor grows memory. When the listening connection is lost, every subscription is
marked lagged at reconnect: announcements made meanwhile were missed.

Registering is gap-free: after its registration commits, the listener waits (up to
SETTLE_TIMEOUT) until every transaction that could have checked for listeners before it has
ended, so that their unannounced events are in the table when streams read their backlog.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from flowhost import metrics
from flowhost.db.database import Connection, Database
from flowhost.db.json_codec import dumps_text
from flowhost.db.queries import QUERIES
from flowhost.errors import DatabaseError, DatabaseUnavailableError, FlowhostError

logger = logging.getLogger(__name__)

CHANNEL = "flowhost_events"
# The listening connection's name in pg_stat_activity.
APPLICATION_NAME = "flowhost-realtime"
# At most this many separate ranges per read; more are read as the one range covering them.
MAX_RANGES = 64
# Reads at most this often: announcements in between are read together.
COALESCE_INTERVAL = 0.05
# Events queued for one subscription before it is lagged (it then reads the table).
SUBSCRIPTION_LIMIT = 2000
# How long a new subscription waits for the listening connection.
LISTEN_TIMEOUT = 10.0
RECONNECT_MIN, RECONNECT_MAX = 0.2, 5.0
# The listener refreshes its registration this often (the announcing trigger ignores
# registrations older than 60 s).
REFRESH_INTERVAL = 5.0
# How long a new registration waits for the transactions that may have missed it, and how
# often it looks.
SETTLE_TIMEOUT, SETTLE_POLL = 2.0, 0.005

# Run status changes: the flow.* events, and the status each one leaves the run in (None: it
# does not change the status).
RUN_STATUS_OF = {
    "flow.started": "running",
    "flow.waiting": "queued",
    "flow.admitted": "running",
    "flow.debounced": "queued",
    "flow.retried": "running",
    "flow.migrated": None,
    "flow.completed": "completed",
    "flow.failed": "failed",
    "flow.canceled": "canceled",
    "flow.stalled": "stalled",
}
TERMINAL = frozenset({"completed", "failed", "canceled", "stalled"})


class StreamsClosedError(FlowhostError):
    """The fan-out is closed (the server is stopping)."""


@dataclasses.dataclass(slots=False)
class StreamEvent:
    """An event as streams send it. Its JSON is made once, however many streams send it."""

    id: int
    run_id: uuid.UUID
    flow: str | None
    type: str
    step: str | None
    attempt: int | None
    ts: datetime
    data: Any

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StreamEvent:
        return cls(
            row["id"],
            row["run_id"],
            row["flow"],
            row["type"],
            row["step"],
            row["attempt"],
            row["ts"],
            row["data"],
        )

    @property
    def status(self) -> str | None:
        """The run's status after this event, for a status change."""
        return RUN_STATUS_OF.get(self.type)

    def as_dict(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "run_id": str(self.run_id),
            "flow": self.flow,
            "type": self.type,
            "step": self.step,
            "attempt": self.attempt,
            "ts": self.ts.isoformat(),
            "data": self.data,
        }
        if self.type in RUN_STATUS_OF:
            body["status"] = self.status
        return body

    @functools.cached_property
    def json(self) -> str:
        return dumps_text(self.as_dict())

    @functools.cached_property
    def sse(self) -> str:
        """The event as a Server-Sent Events message (its JSON is one line)."""
        return f"id: {self.id}\nevent: {self.type}\ndata: {self.json}\n\n"


class Subscription:
    """What one stream receives: batches of events in the order they were announced."""

    def __init__(
        self,
        run_id: uuid.UUID | None,
        accepts: Callable[[StreamEvent], bool] | None,
        limit: int,
        on_lag: Callable[[], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self._on_lag = on_lag
        self.accepts = accepts
        self._batches: collections.deque[list[StreamEvent]] = collections.deque()
        self._queued = 0
        self._limit = limit
        self._ready = asyncio.Event()
        # Deliveries were dropped (a slow consumer, a lost connection): read the table.
        self._lagged = False
        self.closed = False

    def deliver(self, events: list[StreamEvent]) -> None:
        if self._lagged or self.closed or not events:
            return
        if self._queued + len(events) > self._limit:
            self.lag()
            return
        self._batches.append(events)
        self._queued += len(events)
        self._ready.set()

    def lag(self) -> None:
        """Drop what is queued: the consumer reads what it missed from the table."""
        if not self._lagged and self._on_lag is not None:
            self._on_lag()
        self._lagged = True
        self._batches.clear()
        self._queued = 0
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def wait(self, timeout: float) -> bool:
        """Until there is something to take (events, a lag, the end); False after `timeout`
        with nothing."""
        if not self._ready.is_set():
            try:
                # asyncio.timeout, not wait_for: no task per wait (thousands of streams wait).
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return False
        return True

    def take_lag(self) -> bool:
        """True (once) when deliveries were dropped. Take it before reading the table, and
        `take` after: what arrives meanwhile is queued again."""
        lagged, self._lagged = self._lagged, False
        return lagged

    def take(self) -> list[StreamEvent]:
        events = [event for batch in self._batches for event in batch]
        self._batches.clear()
        self._queued = 0
        if not self._lagged and not self.closed:
            self._ready.clear()
        return events


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, overlapping and adjacent ranges joined; beyond MAX_RANGES, one covering range."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    if len(merged) > MAX_RANGES:
        return [(merged[0][0], max(high for _, high in merged))]
    return merged


def parse_announcement(payload: str) -> tuple[int, int] | None:
    low, sep, high = payload.partition(":")
    try:
        first, last = int(low), int(high)
    except ValueError:
        return None
    return (first, last) if sep and 0 < first <= last else None


class Fanout:
    """The process's listener and the subscriptions it feeds. Starts on the first
    subscription; `close` ends every subscription and stops it."""

    def __init__(self, database: Database, *, limit: int = SUBSCRIPTION_LIMIT) -> None:
        self._database = database
        self._limit = limit
        self._runs: dict[uuid.UUID, set[Subscription]] = {}
        self._changes: set[Subscription] = set()
        self._pending: list[tuple[int, int]] = []
        self._wake = asyncio.Event()
        self._listening = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        # This process's row in flowhost.stream_listeners.
        self._id = uuid.uuid4()
        # Statements read, announcements heard, subscriptions that fell behind (tests and
        # metrics).
        self.reads = 0
        self.announcements = 0
        self.lags = 0
        metrics.stream_sources.add(self)

    @property
    def subscribers(self) -> int:
        return len(self._changes) + sum(len(subs) for subs in self._runs.values())

    async def subscribe(
        self,
        run_id: uuid.UUID | None,
        accepts: Callable[[StreamEvent], bool] | None = None,
    ) -> Subscription:
        """Events of run `run_id`, or (None) the run status changes of every run that
        `accepts` takes. Returns once the listener listens: what commits after this returns
        is delivered, so a backlog read afterwards leaves no gap."""
        if self._closed:
            raise StreamsClosedError("the server is stopping")
        self._start()
        subscription = Subscription(run_id, accepts, self._limit, self._lagged)
        if run_id is None:
            self._changes.add(subscription)
        else:
            self._runs.setdefault(run_id, set()).add(subscription)
        try:
            await asyncio.wait_for(self._listening.wait(), LISTEN_TIMEOUT)
        except TimeoutError:
            self.unsubscribe(subscription)
            raise DatabaseUnavailableError("cannot listen for new events") from None
        if self._closed:
            self.unsubscribe(subscription)
            raise StreamsClosedError("the server is stopping")
        return subscription

    def _lagged(self) -> None:
        self.lags += 1
        metrics.STREAM_LAGS.inc()

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription.run_id is None:
            self._changes.discard(subscription)
            return
        subscribers = self._runs.get(subscription.run_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._runs[subscription.run_id]

    async def close(self) -> None:
        """End every subscription (their streams end) and stop listening; idempotent."""
        self._closed = True
        for subscription in self._all():
            subscription.close()
        self._runs.clear()
        self._changes.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:
            # Nobody here streams any more: stop the announcements (unless others listen).
            with contextlib.suppress(FlowhostError):
                async with self._database.connection(timeout=2.0) as conn:
                    await conn.execute(QUERIES["unregister_stream_listener"], {"id": self._id})
        self._tasks.clear()

    def _all(self) -> list[Subscription]:
        return [*self._changes, *(s for subs in self._runs.values() for s in subs)]

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen(), name="flowhost-realtime-listen"),
                asyncio.create_task(self._read(), name="flowhost-realtime-read"),
            ]

    # -- listening ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        delay = RECONNECT_MIN
        while True:
            try:
                async with self._database.dedicated_connection(
                    session={"application_name": APPLICATION_NAME}
                ) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    horizon, settled = await self._register(conn)
                    # Announcements made while this process was not registered and listening
                    # are lost (after a reconnect): every stream reads what it missed.
                    self._lag_all()
                    self._listening.set()
                    delay = RECONNECT_MIN
                    while True:
                        async for note in conn.notifies(timeout=REFRESH_INTERVAL):
                            self._announced(note.payload)
                        await conn.execute(QUERIES["register_stream_listener"], {"id": self._id})
                        if not settled and await self._settled(conn, horizon, 0.0):
                            settled = True
                            self._lag_all()
            except (psycopg.Error, FlowhostError) as exc:
                self._listening.clear()
                logger.warning("realtime: lost the listening connection (%s); reconnecting", exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, RECONNECT_MAX)

    async def _register(self, conn: Connection) -> tuple[str, bool]:
        """Register this process (events are announced from then on) and wait until every
        transaction that may have missed the registration has ended: their events are then
        in the table, where streams read their backlog. A transaction running longer than
        SETTLE_TIMEOUT does not hold streams back: once it ends, every stream reads the table
        again (`settled` False until then)."""
        await conn.execute(QUERIES["register_stream_listener"], {"id": self._id})
        row = await (await conn.execute(QUERIES["stream_horizon"])).fetchone()
        horizon = str(row["horizon"]) if row else "0"
        return horizon, await self._settled(conn, horizon, SETTLE_TIMEOUT)

    async def _settled(self, conn: Connection, horizon: str, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            row = await (
                await conn.execute(QUERIES["stream_settled"], {"horizon": horizon})
            ).fetchone()
            if row and row["settled"]:
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(SETTLE_POLL)

    def _lag_all(self) -> None:
        for subscription in self._all():
            subscription.lag()

    def _announced(self, payload: str) -> None:
        self.announcements += 1
        if not self._runs and not self._changes:
            return  # nobody listens: nothing to read
        announced = parse_announcement(payload)
        if announced is None:
            logger.debug("realtime: ignored announcement %r", payload)
            return
        self._pending.append(announced)
        if len(self._pending) > 4 * MAX_RANGES:
            self._pending = merge_ranges(self._pending)
        self._wake.set()

    # -- reading -----------------------------------------------------------------------------

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self._wake.wait()
            pause = last + COALESCE_INTERVAL - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            self._wake.clear()
            ranges, self._pending = merge_ranges(self._pending), []
            runs = list(self._runs)
            if not ranges or (not runs and not self._changes):
                continue
            last = loop.time()
            try:
                async with self._database.connection() as conn:
                    cursor = await conn.execute(
                        QUERIES["announced_events"],
                        {
                            "lows": [low for low, _ in ranges],
                            "highs": [high for _, high in ranges],
                            "runs": runs,
                            "run_changes": bool(self._changes),
                        },
                    )
                    rows = await cursor.fetchall()
            except (DatabaseUnavailableError, DatabaseError) as exc:
                logger.warning("realtime: cannot read new events (%s)", exc)
                for subscription in self._all():
                    subscription.lag()
                await asyncio.sleep(RECONNECT_MIN)
                continue
            self.reads += 1
            metrics.STREAM_READS.inc()
            self._deliver([StreamEvent.from_row(row) for row in rows])

    def _deliver(self, events: list[StreamEvent]) -> None:
        by_run: dict[uuid.UUID, list[StreamEvent]] = {}
        changes: list[StreamEvent] = []
        for event in events:
            by_run.setdefault(event.run_id, []).append(event)
            if event.type in RUN_STATUS_OF:
                changes.append(event)
        for run_id, batch in by_run.items():
            for subscription in self._runs.get(run_id, ()):
                subscription.deliver(batch)
        if changes:
            for subscription in self._changes:
                accepts = subscription.accepts
                subscription.deliver(
                    changes if accepts is None else [e for e in changes if accepts(e)]
                )
