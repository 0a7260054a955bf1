"""Housekeeping: each host prunes, every `housekeeping_interval` seconds, what would otherwise
only grow: slot counters of concurrency keys long idle (one per tenant ever seen), trigger
delivery keys older than `delivery_retention`, and the minutes of run activity (the dashboard's
chart) older than ACTIVITY_RETENTION.

Batches are small transactions that skip rows others hold, so that pruning never waits on (or
holds up) a start or a fire; any number of hosts may prune at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

from flowhost.db.database import Database
from flowhost.db.queries import QUERIES
from flowhost.settings import Settings

logger = logging.getLogger(__name__)

# Rows deleted per transaction.
BATCH = 1000
# A concurrency key's counter goes once the key held nothing for this long.
IDLE_KEY_AFTER = 3600.0
# Seconds of run activity kept: the dashboard's longest chart (7 days) and a day more.
ACTIVITY_RETENTION = 8 * 86400.0


@dataclasses.dataclass(frozen=True, slots=True)
class Pruned:
    key_slots: int
    deliveries: int
    activity_minutes: int = 0


class Housekeeper:
    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings

    async def prune(self) -> Pruned:
        """Prune everything due now, a batch per transaction."""
        key_slots = await self._prune("prune_idle_key_slots", {"idle_after": IDLE_KEY_AFTER})
        deliveries = await self._prune(
            "prune_trigger_deliveries", {"retention": self._settings.delivery_retention}
        )
        activity = await self._prune("prune_run_activity", {"retention": ACTIVITY_RETENTION})
        if key_slots or deliveries or activity:
            logger.info(
                "housekeeping: pruned %d idle key counters, %d old delivery keys, "
                "%d minutes of run activity",
                key_slots,
                deliveries,
                activity,
            )
        return Pruned(key_slots, deliveries, activity)

    async def _prune(self, query: str, params: dict[str, float]) -> int:
        total = 0
        while True:
            async with self._database.transaction() as conn:
                cursor = await conn.execute(QUERIES[query], {**params, "limit": BATCH})
                deleted = cursor.rowcount
            total += deleted
            if deleted < BATCH:
                return total

    async def run(self, stop: asyncio.Event) -> None:
        """Prune every `housekeeping_interval` seconds until `stop` is set (the first time
        after one interval: a host starting has better things to do). A failed pass is logged
        and tried again at the next interval."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.housekeeping_interval)
            if stop.is_set():
                return
            try:
                await self.prune()
            except Exception:
                logger.exception("housekeeping failed; trying again later")
