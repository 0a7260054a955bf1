"""Stalled runs: live runs in which nothing happened for longer than their stall timeout."""

from __future__ import annotations

import dataclasses
import uuid

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES


@dataclasses.dataclass(frozen=True, slots=True)
class StalledRun:
    id: uuid.UUID
    flow: str
    previous_status: str
    reason: str


async def mark_stalled_runs(
    conn: Connection,
    *,
    stale_after: float,
    limit: int,
    default_stall_timeout: float,
    stall_timeout: float | None = None,
) -> list[StalledRun]:
    """Mark up to `limit` runs stalled, with their events, in one statement (the query
    `mark_stalled_runs` says which runs). `stall_timeout` (seconds) replaces each definition's
    own, `default_stall_timeout` serves for definitions not recorded; `stale_after`: seconds
    after which a silent host no longer counts as serving."""
    rows = await (
        await conn.execute(
            QUERIES["mark_stalled_runs"],
            {
                "stale_after": stale_after,
                "limit": limit,
                "stall_timeout": stall_timeout,
                "default_stall_timeout": default_stall_timeout,
            },
        )
    ).fetchall()
    return [
        StalledRun(row["id"], row["flow"], row["previous_status"], row["reason"]) for row in rows
    ]
