"""Stall detection: each host looks for stalled runs every `stall_check_interval` seconds.

A run is stalled when it is live and nothing happened in it for longer than its flow's stall
timeout (engine/stall_timeouts.py). Any number of hosts may look at once: each batch is one
transaction that skips runs another host (or a transition) holds locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from flowhost.db.database import Database
from flowhost.engine.stall_timeouts import DEFAULT_STALL_TIMEOUT
from flowhost.settings import Settings
from flowhost.store.stalls import StalledRun, mark_stalled_runs

logger = logging.getLogger(__name__)

# Runs marked per transaction.
BATCH = 500


class StallDetector:
    def __init__(self, database: Database, settings: Settings) -> None:
        self._database = database
        self._settings = settings

    async def check(self) -> list[StalledRun]:
        """Mark every run that is stalled now, a batch per transaction."""
        stalled: list[StalledRun] = []
        while True:
            async with self._database.transaction() as conn:
                batch = await mark_stalled_runs(
                    conn,
                    stale_after=self._settings.host_stale_after,
                    limit=BATCH,
                    stall_timeout=self._settings.stall_timeout,
                    default_stall_timeout=DEFAULT_STALL_TIMEOUT,
                )
            for run in batch:
                logger.warning(
                    "run %s of flow %s stalled (was %s): %s",
                    run.id,
                    run.flow,
                    run.previous_status,
                    run.reason,
                )
            stalled += batch
            if len(batch) < BATCH:
                return stalled

    async def run(self, stop: asyncio.Event) -> None:
        """Check at once, then every `stall_check_interval` seconds, until `stop` is set. A
        failed check is logged and tried again at the next interval."""
        while not stop.is_set():
            try:
                await self.check()
            except Exception:
                logger.exception("looking for stalled runs failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.stall_check_interval)
