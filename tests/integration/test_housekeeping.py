"""Housekeeping prunes idle concurrency-key counters, old delivery keys and old minutes of run
activity, and nothing else."""

from __future__ import annotations

from pathlib import Path

from flowhost.db.database import Database
from flowhost.engine.housekeeping import Housekeeper, Pruned
from flowhost.settings import load_settings

SLOTS = """
INSERT INTO flowhost.flow_slots (flow, step, key, held, last_granted_at) VALUES
    ('f', '', '', 0, now() - interval '2 days'),           -- a whole scope: kept
    ('f', '', 'idle', 0, now() - interval '2 hours'),      -- idle key: pruned
    ('f', 'charge', 'never', 0, NULL),                     -- never served, holds nothing: pruned
    ('f', '', 'busy', 2, now() - interval '2 hours'),      -- holds slots: kept
    ('f', '', 'recent', 0, now() - interval '5 minutes')   -- served lately: kept
"""
DELIVERIES = """
INSERT INTO flowhost.trigger_deliveries (trigger, key, created_at) VALUES
    ('hook', 'old', now() - interval '8 days'),
    ('hook', 'new', now() - interval '1 day')
"""
ACTIVITY = """
INSERT INTO flowhost.run_activity (minute, flow, started) VALUES
    (flowhost.activity_minute(now() - interval '9 days'), 'f', 3),
    (flowhost.activity_minute(now() - interval '6 days'), 'f', 2)
"""


async def test_pruning_removes_idle_key_counters_and_expired_delivery_keys(
    database: Database, tmp_path: Path
) -> None:
    async with database.transaction() as conn:
        await conn.execute(SLOTS)
        await conn.execute(DELIVERIES)
        await conn.execute(ACTIVITY)
    settings = load_settings(tmp_path, environ={}, delivery_retention=7 * 24 * 3600.0)
    housekeeper = Housekeeper(database, settings)
    assert await housekeeper.prune() == Pruned(key_slots=2, deliveries=1, activity_minutes=1)
    assert await housekeeper.prune() == Pruned(key_slots=0, deliveries=0, activity_minutes=0)
    async with database.connection() as conn:
        slots = await (
            await conn.execute("SELECT key FROM flowhost.flow_slots ORDER BY key")
        ).fetchall()
        kept = await (
            await conn.execute("SELECT key FROM flowhost.trigger_deliveries ORDER BY key")
        ).fetchall()
        activity = await (
            await conn.execute("SELECT started FROM flowhost.run_activity")
        ).fetchall()
    assert [row["key"] for row in slots] == ["", "busy", "recent"]
    assert [row["key"] for row in kept] == ["new"]
    assert [row["started"] for row in activity] == [2]
