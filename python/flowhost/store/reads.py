"""The read side: runs, steps, events and statistics as the CLI and the API show them."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Any

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.errors import InvalidInputError, RunNotFoundError

# A run is live while it is queued (not started yet), running or awaiting; then it ends in one
# of these.
LIVE_STATUSES = frozenset({"queued", "running", "awaiting"})
TERMINAL_STATUSES = frozenset({"completed", "failed", "canceled", "stalled"})


async def get_run(conn: Connection, run_id: uuid.UUID) -> dict[str, Any]:
    row = await (await conn.execute(QUERIES["get_run"], {"run_id": run_id})).fetchone()
    if row is None:
        raise RunNotFoundError(f"no run {run_id}")
    return row


async def steps_of_run(conn: Connection, run_id: uuid.UUID) -> list[dict[str, Any]]:
    return await (await conn.execute(QUERIES["steps_of_run"], {"run_id": run_id})).fetchall()


@dataclasses.dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs `list_runs` lists; None: any."""

    flow: str | None = None
    status: str | None = None
    parent: uuid.UUID | None = None
    # Created at or after `since`, before `until`.
    since: datetime | None = None
    until: datetime | None = None


# Where a page of runs (newest first) ends: the last run's creation time and id.
RunPosition = tuple[datetime, uuid.UUID]


async def list_runs(
    conn: Connection,
    *,
    flow: str | None = None,
    status: str | None = None,
    limit: int = 20,
    where: RunFilter | None = None,
    after: RunPosition | None = None,
) -> list[dict[str, Any]]:
    """Runs newest first (ties by id); `after`: the page after that run (keyset paging, as
    fast deep in the list as on its first page)."""
    where = where or RunFilter(flow=flow, status=status)
    after_created, after_id = after if after is not None else (None, None)
    cursor = await conn.execute(
        QUERIES["list_runs"],
        {
            "flow": where.flow,
            "status": where.status,
            "parent": where.parent,
            "since": where.since,
            "until": where.until,
            "after_created": after_created,
            "after_id": after_id,
            "limit": limit,
        },
        # A plan per call: a prepared (generic) plan cannot drop the filters that are absent,
        # and would scan past them.
        prepare=False,
    )
    return await cursor.fetchall()


def id_prefix_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The ids that start with `text` (hex digits, dashes anywhere), as the lowest and highest
    of them; None when `text` cannot start a run id."""
    digits = text.strip().lower().replace("-", "")
    if not digits or len(digits) > 32 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


async def runs_by_id_prefix(conn: Connection, text: str, *, limit: int) -> list[dict[str, Any]]:
    """Runs whose id starts with `text` (by id; a range of the primary key, however many runs
    there are), with the columns of `list_runs`."""
    bounds = id_prefix_range(text)
    if bounds is None:
        raise InvalidInputError(f"{text!r} is not a run id")
    low, high = bounds
    cursor = await conn.execute(
        QUERIES["runs_by_id_prefix"], {"low": low, "high": high, "limit": limit}
    )
    return await cursor.fetchall()


async def resolve_run_id(conn: Connection, text: str) -> uuid.UUID:
    """A full run id, or a unique prefix of one (as `runs list` prints them)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    prefix = text.strip().lower()
    rows = await runs_by_id_prefix(conn, prefix, limit=2)
    if not rows:
        raise RunNotFoundError(f"no run id starts with {prefix!r}")
    if len(rows) > 1:
        raise InvalidInputError(f"run id prefix {prefix!r} is ambiguous; give more characters")
    value = rows[0]["id"]
    assert isinstance(value, uuid.UUID)
    return value


async def state_of_run(conn: Connection, run_id: uuid.UUID) -> dict[str, Any]:
    rows = await (await conn.execute(QUERIES["state_of_run"], {"run_id": run_id})).fetchall()
    return {row["key"]: row["value"] for row in rows}


async def hosts_serving(
    conn: Connection, flow: str, definition_hash: str, stale_after: float
) -> int:
    """Live hosts serving this definition of `flow` (hosts that serve another one would not
    run its runs)."""
    row = await (
        await conn.execute(
            QUERIES["hosts_serving"],
            {"flow": flow, "definition_hash": definition_hash, "stale_after": stale_after},
        )
    ).fetchone()
    return int(row["hosts"]) if row else 0


async def run_is_served(conn: Connection, run_id: uuid.UUID, stale_after: float) -> bool:
    """Whether a live host serves the definition the run is on (else nothing runs it)."""
    run = await get_run(conn, run_id)
    return (
        await hosts_serving(conn, run["flow"], run["definition_hash"], stale_after=stale_after) > 0
    )
