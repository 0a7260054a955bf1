"""What the dashboard reads besides what it shares with the API (flowhost.store.reads,
statistics, versions, the trigger and schedule services): runs over time, the latest failures,
the queue, the waiting lists and the hosts. Each answers from an index or a small table."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES


async def run_activity(
    conn: Connection, *, bucket: timedelta, since: datetime, flow: str | None = None
) -> list[dict[str, Any]]:
    """Runs started and ended per bucket from `since` ({"at", "started", "completed",
    "failed", "canceled", "stalled"}; buckets without runs are absent)."""
    cursor = await conn.execute(
        QUERIES["run_activity"], {"bucket": bucket, "since": since, "flow": flow}
    )
    return await cursor.fetchall()


async def recent_failures(conn: Connection, *, limit: int) -> list[dict[str, Any]]:
    return await (await conn.execute(QUERIES["recent_failures"], {"limit": limit})).fetchall()


async def queue_depth(conn: Connection) -> list[dict[str, Any]]:
    """Live jobs per entrypoint and status, with the oldest and how many wait for a later time."""
    return await (await conn.execute(QUERIES["queue_depth"])).fetchall()


async def waiting_lists(conn: Connection) -> list[dict[str, Any]]:
    return await (await conn.execute(QUERIES["waiting_lists"])).fetchall()


async def list_hosts(conn: Connection, *, stale_after: float) -> list[dict[str, Any]]:
    cursor = await conn.execute(QUERIES["list_hosts"], {"stale_after": stale_after})
    return await cursor.fetchall()
