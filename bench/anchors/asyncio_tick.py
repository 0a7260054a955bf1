"""Anchor: the tick lag of a plain asyncio loop that does what a fire does at its simplest.

It sleeps until each whole second (`asyncio.sleep` on the machine's wall clock), then, for each
of `schedules` pretend schedules, inserts a row (schedule, planned time) and commits, one
transaction each on one connection; the lag of each is the wall clock after its commit minus
the planned second. That is the floor a scheduler on this event loop, this machine and this
Postgres cannot beat: no claim, no lock, no run started, no event appended.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime

import psycopg

TABLE = """
CREATE TABLE anchor_ticks (
    schedule integer NOT NULL,
    planned timestamptz NOT NULL,
    fired timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
INSERT = "INSERT INTO anchor_ticks (schedule, planned) VALUES (%s, %s)"


async def asyncio_tick_lag(
    url: str, *, schedules: int, seconds: int, warmup: int = 2
) -> list[float]:
    """Commit lags (ms) of `schedules` inserts per second over `seconds` seconds, after
    `warmup` seconds not counted."""
    lags: list[float] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(TABLE)
        planned = math.floor(time.time()) + 1
        for second in range(warmup + seconds):
            await asyncio.sleep(max(0.0, planned - time.time()))
            at = datetime.fromtimestamp(planned, UTC)
            for schedule in range(schedules):
                async with conn.transaction():
                    await conn.execute(INSERT, (schedule, at))
                if second >= warmup:
                    lags.append((time.time() - planned) * 1000)
            planned += 1
    return lags
