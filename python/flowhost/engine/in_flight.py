"""The attempts a host is running, and stopping those whose run is over.

A run that ends while some of its steps run (canceled from anywhere, failed because of another
step) is announced at commit with NOTIFY flowhost_cancel (payload: the run id). Each host asks
Postgres which of its attempts of that run are stale, and stops them. Notifications are missed
while a host reconnects, so it also checks all its attempts when it (re)connects and every
`interval` seconds: an attempt never outlives its run by more than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator

from flowhost.db.database import Database
from flowhost.errors import FlowhostError
from flowhost.store import control as control_store
from flowhost.store.runs import JobKey
from flowhost.workers.cancellation import Cancellation

logger = logging.getLogger(__name__)

CANCEL_CHANNEL = "flowhost_cancel"
# How long a notice is remembered for attempts that register after it (seconds).
ANNOUNCEMENTS_KEPT = 10.0


class InFlightAttempts:
    def __init__(self) -> None:
        self._attempts: dict[JobKey, Cancellation] = {}
        self._runs_to_check: set[uuid.UUID] = set()
        self._check_all = False
        self._wake = asyncio.Event()
        self._stopping = False
        # Runs announced lately -> when: an attempt claimed just before its run was canceled
        # may register only after the notice came.
        self._announced: dict[uuid.UUID, float] = {}

    def __len__(self) -> int:
        return len(self._attempts)

    @contextlib.contextmanager
    def track(self, job: JobKey) -> Iterator[Cancellation]:
        """While the block runs, `job` can be stopped through the Cancellation it yields; at
        the end, the Cancellation is closed (later requests change nothing)."""
        cancellation = Cancellation()
        self._attempts[job] = cancellation
        if job[0] in self._announced:
            self._runs_to_check.add(job[0])
            self._wake.set()
        try:
            yield cancellation
        finally:
            cancellation.close()
            if self._attempts.get(job) is cancellation:
                del self._attempts[job]

    def notified(self, payload: str) -> None:
        """A NOTIFY on CANCEL_CHANNEL: check this host's attempts of that run."""
        try:
            run_id = uuid.UUID(payload)
        except ValueError:
            logger.warning("ignoring a %s notification that is not a run id", CANCEL_CHANNEL)
            return
        now = time.monotonic()
        self._announced = {
            run: at for run, at in self._announced.items() if now - at < ANNOUNCEMENTS_KEPT
        }
        self._announced[run_id] = now
        if any(job[0] == run_id for job in self._attempts):
            self._runs_to_check.add(run_id)
            self._wake.set()

    def stop_watching(self) -> None:
        self._stopping = True
        self._wake.set()

    async def watch(self, database: Database, interval: float) -> None:
        """Stop the attempts whose run is over, on notification and every `interval` seconds,
        until `stop_watching()`. Starts with a check of every attempt: a host starts watching
        when it (re)connects, and notifications sent meanwhile are lost."""
        self._stopping = False
        self._check_all = True
        while not self._stopping:
            if not self._check_all and not self._runs_to_check:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), interval)
                if not self._wake.is_set():
                    self._check_all = True  # the periodic check
            self._wake.clear()
            if self._stopping:
                return
            runs, every = self._runs_to_check, self._check_all
            self._runs_to_check, self._check_all = set(), False
            watched = {
                job: cancellation
                for job, cancellation in self._attempts.items()
                if every or job[0] in runs
            }
            if watched:
                await self._stop_stale(database, watched)

    async def _stop_stale(self, database: Database, watched: dict[JobKey, Cancellation]) -> None:
        try:
            async with database.connection() as conn:
                stale = await control_store.stale_attempts(conn, list(watched))
        except FlowhostError as exc:
            logger.warning("could not check the runs of attempts in flight: %s", exc)
            self._check_all = True  # again, once the database answers
            await asyncio.sleep(1.0)
            return
        for attempt in stale:
            run_id, step, number = attempt.job
            if attempt.run_status not in ("running", "awaiting"):
                reason = f"run {run_id} is {attempt.run_status or 'gone'}"
            else:
                reason = f"attempt {number} of step {step!r} is no longer current"
            logger.info("stopping attempt %d of %s in run %s: %s", number, step, run_id, reason)
            watched[attempt.job].cancel(reason)
