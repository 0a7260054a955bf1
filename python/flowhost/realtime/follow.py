"""Streams: a backlog read from the events table, then live events from the fan-out, with no
gap and no duplicate.

The order matters: subscribe first (the fan-out listens before `subscribe` returns), then
read the backlog. An event committed meanwhile comes both ways; SeenIds drops the second.
"""

from __future__ import annotations

import collections
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from flowhost.db.database import Database
from flowhost.db.queries import QUERIES
from flowhost.realtime.fanout import TERMINAL, Fanout, StreamEvent, Subscription

PAGE = 1000
# Ids remembered per stream to drop duplicates; older ones are covered by `floor`.
SEEN_WINDOW = 4096


class SeenIds:
    """The ids a stream sent: everything up to `floor`, and the last SEEN_WINDOW above it.

    Live events arrive in commit order, which is not always id order (two transactions of
    one run committing together), so the highest id sent is not enough to drop duplicates.
    """

    def __init__(self, after: int) -> None:
        self.floor = after
        self.high = after
        self._order: collections.deque[int] = collections.deque()
        self._ids: set[int] = set()

    def fresh(self, events: list[StreamEvent]) -> list[StreamEvent]:
        """The events not sent yet, now counted as sent."""
        out = []
        for event in events:
            if event.id <= self.floor or event.id in self._ids:
                continue
            out.append(event)
            self._ids.add(event.id)
            self._order.append(event.id)
            self.high = max(self.high, event.id)
            if len(self._order) > SEEN_WINDOW:
                oldest = self._order.popleft()
                self._ids.discard(oldest)
                self.floor = max(self.floor, oldest)
        return out


async def run_status(database: Database, run_id: uuid.UUID) -> str | None:
    """The run's status, None when there is no such run."""
    async with database.connection() as conn:
        row = await (
            await conn.execute(QUERIES["run_stream_status"], {"run_id": run_id})
        ).fetchone()
    return None if row is None else str(row["status"])


async def _pages(
    database: Database, query: str, params: dict[str, Any]
) -> AsyncIterator[list[StreamEvent]]:
    after = params["after"]
    while True:
        async with database.connection() as conn:
            cursor = await conn.execute(QUERIES[query], {**params, "after": after, "limit": PAGE})
            rows = await cursor.fetchall()
        if rows:
            yield [StreamEvent.from_row(row) for row in rows]
            after = rows[-1]["id"]
        if len(rows) < PAGE:
            return


def _ended(events: list[StreamEvent], ended: bool) -> bool:
    """Whether the run is over after `events` (it was `ended` before them)."""
    for event in events:
        status = event.status
        if status is not None:
            ended = status in TERMINAL
    return ended


async def follow_run(
    fanout: Fanout,
    database: Database,
    run_id: uuid.UUID,
    *,
    after: int = 0,
    heartbeat: float = 15.0,
) -> AsyncGenerator[list[StreamEvent]]:
    """Batches of the run's events with ids above `after`: its backlog, then live ones, until
    the run is over (after its last events) or the fan-out closes. An empty batch once
    live (after the backlog), and every `heartbeat` seconds without events."""
    subscription = await fanout.subscribe(run_id)
    try:
        seen = SeenIds(after)
        # Read before the backlog: a run over by now has its last events in the backlog.
        status = await run_status(database, run_id)
        ended = status in TERMINAL
        backlog = _run_backlog(database, run_id)
        async for page in backlog(after):
            fresh = seen.fresh(page)
            ended = _ended(fresh, ended)
            if fresh:
                yield fresh
        if ended:
            return
        yield []  # live from here
        async with contextlib.aclosing(_live(subscription, seen, heartbeat, backlog)) as live:
            async for batch in live:
                yield batch
                if _ended(batch, False):
                    return
    finally:
        fanout.unsubscribe(subscription)


async def follow_changes(
    fanout: Fanout,
    database: Database,
    *,
    after: int | None = None,
    accepts: Callable[[StreamEvent], bool] | None = None,
    heartbeat: float = 15.0,
) -> AsyncGenerator[list[StreamEvent]]:
    """Batches of run status changes (flow.* events) of every run that `accepts` takes:
    those after event id `after` first (None: none, only what commits from now), then live
    ones, until the fan-out closes. An empty batch once live (after the backlog), and every
    `heartbeat` seconds without any."""
    subscription = await fanout.subscribe(None, accepts)
    try:
        if after is None:
            async with database.connection() as conn:
                cursor = await conn.execute(QUERIES["last_event_id"])
                row = await cursor.fetchone()
            after = int(row["id"]) if row else 0
        seen = SeenIds(after)
        backlog = _changes_backlog(database, accepts)
        async for page in backlog(seen.high):
            fresh = seen.fresh(page)
            if fresh:
                yield fresh
        yield []  # live from here
        async with contextlib.aclosing(_live(subscription, seen, heartbeat, backlog)) as live:
            async for batch in live:
                yield batch
    finally:
        fanout.unsubscribe(subscription)


Backlog = Callable[[int], AsyncIterator[list[StreamEvent]]]


def events_of_run(
    database: Database, run_id: uuid.UUID, *, after: int = 0
) -> AsyncIterator[list[StreamEvent]]:
    """The run's events after `after`, a page at a time, from the table alone (no live part,
    no listener)."""
    return _run_backlog(database, run_id)(after)


def _run_backlog(database: Database, run_id: uuid.UUID) -> Backlog:
    def read(after: int) -> AsyncIterator[list[StreamEvent]]:
        return _pages(database, "run_stream_backlog", {"run_id": run_id, "after": after})

    return read


def _changes_backlog(database: Database, accepts: Callable[[StreamEvent], bool] | None) -> Backlog:
    async def read(after: int) -> AsyncIterator[list[StreamEvent]]:
        async for page in _pages(database, "changes_backlog", {"after": after}):
            yield page if accepts is None else [e for e in page if accepts(e)]

    return read


async def _live(
    subscription: Subscription, seen: SeenIds, heartbeat: float, backlog: Backlog
) -> AsyncGenerator[list[StreamEvent]]:
    """Live batches (empty ones as heartbeats) until the subscription closes. After a lag,
    what was missed is read from the table, from the highest id sent."""
    while True:
        if not await subscription.wait(heartbeat):
            yield []
            continue
        if subscription.closed:
            return
        if subscription.take_lag():
            async for page in backlog(seen.high):
                fresh = seen.fresh(page)
                if fresh:
                    yield fresh
        fresh = seen.fresh(subscription.take())
        if fresh:
            yield fresh
