"""Appending events to the log: flowhost's binary COPY path beside plain INSERTs.

Batches: `BATCH` events per transaction, committed (durable: `synchronous_commit` on), through
`flowhost.store.events.append_events` (Rust encoding + one COPY round trip), against psycopg's
`executemany` of an INSERT with the same rows (`json.dumps` of the data, pipelined by psycopg),
each in its own fresh database in the same repetition. Encoding is inside the timed region for
flowhost, as `json.dumps` is for the anchor.

Single: one event per transaction, the latency of `append_events` against a bare INSERT.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import Context, Measurement
from flowhost.db.database import Connection, Database
from flowhost.project import prepare_schema
from flowhost.store.events import NewEvent, append_events

NAME = "event_append"
DESCRIPTION = "durable event appends: 1,000-event batches by binary COPY vs executemany INSERT"

BATCH = 1_000
INSERT = (
    "INSERT INTO flowhost.events (run_id, type, step, attempt, data) "
    "VALUES (%s, %s, %s, %s, %s::jsonb)"
)


def sample_events(count: int) -> list[NewEvent]:
    """Log events as steps write them: a message, a level and a few structured fields."""
    runs = [uuid.uuid4() for _ in range(max(1, count // 20))]
    return [
        NewEvent(
            runs[index % len(runs)],
            "log",
            {
                "level": "info",
                "message": f"charged order {index}",
                "fields": {"order": f"A-{index}", "amount": 25.5 + index, "items": [1, 2, 3]},
            },
            "charge",
            1,
        )
        for index in range(count)
    ]


async def by_copy(conn: Connection, events: list[NewEvent]) -> None:
    async with conn.transaction():
        await append_events(conn, events)


async def by_insert(conn: Connection, events: list[NewEvent]) -> None:
    rows = [(e.run_id, e.type, e.step, e.attempt, json.dumps(e.data)) for e in events]
    async with conn.transaction():
        if len(rows) == 1:  # a bare INSERT, the anchor of a single append
            await conn.execute(INSERT, rows[0])
        else:
            await conn.cursor().executemany(INSERT, rows)


Append = Callable[[Connection, list[NewEvent]], Awaitable[None]]


async def measure(url: str, append: Append, batches: int, singles: int) -> tuple[float, float]:
    """(events/s over `batches` batches of BATCH, median ms of `singles` one-event appends)."""
    async with Database(url, pool_size=1) as database:
        await prepare_schema(database)
        async with database.connection() as conn:
            await append(conn, sample_events(BATCH))  # warm-up: plans, caches, first pages
            payload = [sample_events(BATCH) for _ in range(batches)]
            started = time.perf_counter()
            for events in payload:
                await append(conn, events)
            rate = batches * BATCH / (time.perf_counter() - started)
            latencies: list[float] = []
            for events in (sample_events(1) for _ in range(singles)):
                started = time.perf_counter()
                await append(conn, events)
                latencies.append((time.perf_counter() - started) * 1000)
    return rate, statistics.median(latencies)


async def run(ctx: Context) -> list[Measurement]:
    batches, singles = ctx.size(40, quick=4), ctx.size(500, quick=50)
    results: dict[str, Any] = {}
    for label, append in (("copy", by_copy), ("insert", by_insert)):
        async with ctx.fresh_database(label) as url:
            results[label] = await measure(url, append, batches, singles)
    (copy_rate, copy_ms), (insert_rate, insert_ms) = results["copy"], results["insert"]
    return [
        Measurement(
            "batch_events_per_s",
            copy_rate,
            "events/s",
            anchor="executemany_insert",
            anchor_value=insert_rate,
        ),
        Measurement(
            "single_append_ms",
            copy_ms,
            "ms",
            higher_is_better=False,
            anchor="bare_insert",
            anchor_value=insert_ms,
        ),
    ]
