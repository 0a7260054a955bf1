"""Schedule triggers on a real engine and database: a host's scheduler fires them on time with
their lag recorded, applies the overlap and catch-up policies, and picks up changes made at
runtime."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowhost.db.database import Database
from flowhost.store import reads
from tests.support.engine import running_host, write_functions

TICKS = """
from flowhost_worker import step

@step(flow="ticks", entry=True, isolation="inprocess",
      triggers={"define": {"name": "every.second", "type": "schedule",
                           "config": {"cron": "* * * * * *", "overlap": "allow"}},
                "subscribe": "every.second"})
async def tick(data, ctx):
    return data
"""


async def fires_of(database: Database, name: str) -> list[dict[str, Any]]:
    async with database.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT ts, data FROM flowhost.trigger_events"
                " WHERE trigger = %s AND type = 'trigger.fired' ORDER BY id",
                (name,),
            )
        ).fetchall()
    return [{"ts": row["ts"], **row["data"]} for row in rows]


async def wait_for_fires(
    database: Database, name: str, count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while len(found := await fires_of(database, name)) < count:
            await asyncio.sleep(0.05)
    return found


async def schedule_row(database: Database, name: str) -> dict[str, Any]:
    async with database.connection() as conn:
        row = await (
            await conn.execute("SELECT * FROM flowhost.schedules WHERE trigger = %s", (name,))
        ).fetchone()
    assert row is not None
    return dict(row)


def planned(fire: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(fire["details"]["planned_at"])


async def test_a_per_second_schedule_fires_each_second_once_with_its_lag(
    tmp_path: Path, database_url: str
) -> None:
    project_dir = write_functions(tmp_path, {"ticks.py": TICKS})
    async with running_host(project_dir, database_url) as project:
        fires = await wait_for_fires(project.database, "every.second", 3)
        row = await schedule_row(project.database, "every.second")
        async with project.database.connection() as conn:
            runs = {r["id"]: r for r in await reads.list_runs(conn, flow="ticks", limit=100)}
    times = [planned(fire) for fire in fires]
    assert times == sorted(set(times))
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))
    for fire in fires:
        assert fire["source"] == "schedule"
        assert fire["delivery_key"] == f"every.second@{fire['details']['planned_at']}"
        assert planned(fire).microsecond == 0
        # Fired after its planned time, and not long after (an idle host).
        assert 0 <= fire["details"]["lag_ms"] < 1000
        assert fire["ts"] >= planned(fire)
        [run] = fire["runs"]
        assert run["flow"] == "ticks" and uuid.UUID(run["run_id"]) in runs
        assert fire["payload"] == {
            "schedule": "every.second",
            "planned_at": fire["details"]["planned_at"],
        }
    assert row["lag_fires"] >= 3 and row["lag_max_ms"] < 1000
    assert row["next_fire"] > times[-1]
    assert row["next_fire"].tzinfo is not None and row["next_fire"] > datetime.now(UTC) - timedelta(
        seconds=2
    )
