"""The scheduler: every host fires the schedules that are due, each planned time exactly once.

Each host runs one. It sleeps until just before (LEAD) the earliest planned time of any
schedule (on the database's clock), then claims due schedules one per transaction with FOR
UPDATE SKIP LOCKED, and waits for the planned time holding the claim: schedulers of several
hosts share the work without waiting on each other, and a schedule's row stays locked by the
one that fires it. In that transaction it fires the schedule's trigger
(`fire_trigger`: runs in the subscribed flows and the `trigger.fired` event) and moves
`next_fire` on, so the fire and the move commit together or not at all: a host killed in the
middle leaves the schedule due for another. Each fire also takes the delivery key
`<schedule>@<planned time>`, so that even a planned time computed twice could not fire twice.

What a tick does with the due planned times: see `schedule_config.plan_tick` (grace and
catch-up) and `_Tick` (overlap). A change of a schedule (NOTIFY flowhost_schedules) or of the
trigger registry (NOTIFY flowhost_triggers) wakes it; while fires are queued behind live runs it
also listens for the end of those runs (NOTIFY flowhost_run_finished). It never sleeps longer
than MAX_SLEEP, which also bounds what a missed notification costs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from flowhost.db.database import Connection, Database
from flowhost.engine import control
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.wakeups import first_of
from flowhost.errors import (
    DatabaseUnavailableError,
    FlowhostError,
    RunStateError,
    TriggerNotFoundError,
    TriggerRetiredError,
)
from flowhost.metrics import TICK_LAG
from flowhost.store import schedules as store
from flowhost.store import triggers as trigger_store
from flowhost.store.json_data import storable_text
from flowhost.store.schedules import DueSchedule, NextWake, TickRecord
from flowhost.store.triggers import NewTriggerEvent
from flowhost.triggers.event_triggers import CHANNEL as TRIGGERS_CHANNEL
from flowhost.triggers.firing import fire_trigger
from flowhost.triggers.schedule_config import (
    MAX_QUEUED,
    PlannedFire,
    ScheduleConfig,
    plan_tick,
)
from flowhost.triggers.schedule_state import names_to_reconcile, reconcile

logger = logging.getLogger(__name__)

SOURCE = "schedule"
RUNS_CHANNEL = "flowhost_run_finished"
# Events of a schedule's trigger stream besides trigger.fired and trigger.fire_failed.
SCHEDULE_SKIPPED = trigger_store.SCHEDULE_SKIPPED
SCHEDULE_QUEUED = trigger_store.SCHEDULE_QUEUED
SCHEDULE_MISSED = trigger_store.SCHEDULE_MISSED
# The longest sleep: also how often schedules are compared with their triggers without a
# notification.
MAX_SLEEP = 30.0
# A scheduler wakes and claims a schedule this long before its planned time, then waits for
# the time holding it: the transaction's start and the claim are then out of the fire's lag.
LEAD = 0.025
# A due schedule is held by another host's tick: look again this soon.
BUSY_RETRY = 0.02
# Fires wait for runs: look again this soon even if no notification says a run ended (a run
# that stalled, say).
QUEUE_CHECK = 5.0
# After an error that is not the database going away.
ERROR_RETRY = 1.0
# Transactions one host fires in at once when several schedules are due together: each claims
# its schedule ahead of the planned time (LEAD), so the schedules claimed together fire right at
# it, and those beyond wait for a transaction to end. 8 (the default pool size): ten per-second
# schedules measured p99 commit lags of 80 ms with 4 at once, 53-62 ms with 8 or 10 on a loaded
# machine.
CONCURRENCY = 8
# Live runs remembered per schedule (overlap "allow" may have many).
MAX_TRACKED_RUNS = 1000
# Commit lags a scheduler keeps (for metrics and the bench).
COMMIT_LAGS_KEPT = 100_000


class _Stale(Exception):
    """The trigger changed under the tick (retired, deleted): roll back, reconcile first."""


def delivery_key(name: str, planned: datetime) -> str:
    """The delivery key of a schedule's fire planned at `planned` (one per planned time)."""
    return f"{name}@{planned.astimezone(UTC).isoformat()}"


class Scheduler:
    """One host's scheduler. `served` gives the flow definitions the host serves; `host` (its
    id) is recorded in the details of the fires it makes."""

    def __init__(
        self,
        database: Database,
        served: Callable[[], Mapping[str, FlowDefinition]],
        *,
        grace: float,
        host: str | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._database = database
        self._served = served
        self._grace = grace
        self._host = host
        self._concurrency = concurrency
        self._wake = asyncio.Event()
        self._reconcile_due = True
        self._next_reconcile = 0.0
        # Live runs that queued fires wait for (heard of on RUNS_CHANNEL while non-empty).
        self._blocking: frozenset[uuid.UUID] = frozenset()
        # Some schedule has queued fires (as last seen; True until the first look).
        self._queued = True
        self._listening_runs = False
        self._listener: asyncio.Task[None] | None = None
        # Lag (ms) at commit of this host's latest fires that were on time (not caught up or
        # queued), also observed in the flowhost_schedule_tick_lag_seconds histogram: what the
        # fire's event records is its lag when the fire began.
        self.commit_lags: collections.deque[float] = collections.deque(maxlen=COMMIT_LAGS_KEPT)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Fire due schedules until `stop` is set. Raises the database's errors (the host
        reconnects and calls this again)."""
        self._reconcile_due = True
        self._listening_runs = False
        async with self._database.dedicated_connection() as listen:
            for channel in (store.CHANNEL, TRIGGERS_CHANNEL):
                await listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._start_listener(listen)
            try:
                await self._loop(stop, listen)
            finally:
                await self._stop_listener()

    async def _loop(self, stop: asyncio.Event, listen: Connection) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.pass_once()
                async with self._database.connection() as conn:
                    wake = await store.next_wake(conn)
                self._queued = wake.queued > 0
                await self._follow_runs(listen, wake.blocking)
                wait = _sleep_for(wake)
            except (psycopg.OperationalError, DatabaseUnavailableError):
                raise
            except Exception:
                logger.exception("firing due schedules failed; trying again")
                wait = ERROR_RETRY
            assert self._listener is not None
            await first_of(stop, self._wake, self._listener, wait, name="scheduler")
            if self._listener.done():
                self._listener.result()  # the listening connection broke: reconnect

    async def pass_once(self) -> int:
        """Bring changed schedules up to date, then fire everything due; returns how many
        schedules were handled."""
        if self._reconcile_due or time.monotonic() >= self._next_reconcile:
            # Cleared first: a notification during the work asks for another round.
            self._reconcile_due = False
            try:
                await self.reconcile_all()
            except BaseException:
                self._reconcile_due = True
                raise
            self._next_reconcile = time.monotonic() + MAX_SLEEP
        return await self.fire_due()

    async def reconcile_all(self) -> None:
        async with self._database.transaction() as conn:
            names = await names_to_reconcile(conn)
        for name in names:
            async with self._database.transaction() as conn:
                await reconcile(conn, name)

    async def fire_due(self) -> int:
        """Fire every schedule due (within LEAD), `concurrency` transactions at once."""

        async def drain() -> int:
            handled = 0
            while await self.tick_once():
                handled += 1
            return handled

        return sum(await asyncio.gather(*(drain() for _ in range(self._concurrency))))

    async def tick_once(self) -> bool:
        """Claim one due schedule and handle it, in one transaction; False if none was due."""
        try:
            async with self._database.transaction() as conn:
                due = await store.claim_due(conn, lead=LEAD, queued=self._queued)
                if due is None:
                    return False
                tick = _Tick(conn, due, time.monotonic(), self._served, self._grace, self._host)
                await tick.run()
        except _Stale:
            self._reconcile_due = True
            return True
        for planned in tick.on_time:
            lag = tick.lag_ms(planned)
            self.commit_lags.append(lag)
            TICK_LAG.labels(schedule=tick.name).observe(lag / 1000)
        return True

    # -- notifications ----------------------------------------------------------------------

    def _start_listener(self, conn: Connection) -> None:
        self._listener = asyncio.create_task(self._listen(conn), name="flowhost-scheduler-listen")

    async def _stop_listener(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener

    async def _listen(self, conn: Connection) -> None:
        async for note in conn.notifies():
            if note.channel == RUNS_CHANNEL:
                if self._blocking and _run_of(note.payload) in self._blocking:
                    self._wake.set()
                continue
            if note.channel == TRIGGERS_CHANNEL:
                self._reconcile_due = True
            self._wake.set()

    async def _follow_runs(self, listen: Connection, blocking: frozenset[uuid.UUID]) -> None:
        """Listen for the end of runs only while queued fires wait for some (every run's end
        is announced; a host without queued fires does not want to hear of them)."""
        self._blocking = blocking
        wanted = bool(blocking)
        if wanted == self._listening_runs:
            return
        # The listener holds the connection: stop it, change what it hears, start it again.
        # Notifications that arrive meanwhile wait in the connection's backlog.
        await self._stop_listener()
        command = "LISTEN {}" if wanted else "UNLISTEN {}"
        await listen.execute(sql.SQL(command).format(sql.Identifier(RUNS_CHANNEL)))
        self._listening_runs = wanted
        self._start_listener(listen)
        if wanted:
            self._wake.set()  # a run may have ended before the LISTEN: look once more


class _Tick:
    """What one claimed schedule's tick does, inside the claim's transaction.

    First fires queued earlier whose runs have ended (oldest first, one at a time while the
    runs it starts are live). Then each due planned time, oldest first, with the schedule's
    overlap policy when runs it started are still live: "skip" drops the time, "queue" keeps
    it for when they end (at most MAX_QUEUED), "replace" cancels them and fires, "allow"
    fires. Finally records the schedule's new state and figures in one statement."""

    def __init__(
        self,
        conn: Connection,
        due: DueSchedule,
        claimed_at: float,
        served: Callable[[], Mapping[str, FlowDefinition]],
        grace: float,
        host: str | None,
    ) -> None:
        self.conn = conn
        self.due = due
        self.claimed_at = claimed_at
        self.served = served
        self.grace = grace
        self.host = host
        self.events: list[NewTriggerEvent] = []
        # Planned times fired on time (their lag counts).
        self.on_time: list[datetime] = []

    @property
    def name(self) -> str:
        return self.due.name

    async def run(self) -> None:
        due = self.due
        record = TickRecord(
            due.name,
            next_fire=due.next_fire,
            queued=list(due.queued),
            live_runs=list(due.live_runs),
        )
        try:
            config = ScheduleConfig.from_config(due.config)
        except ValueError as exc:
            logger.warning(
                "schedule %s has an invalid config (%s): it does not fire", due.name, exc
            )
            record.next_fire, record.queued = None, []
            await store.record_tick(self.conn, record)
            return
        fires: tuple[PlannedFire, ...] = ()
        now = self.now()
        if due.next_fire is not None and now < due.next_fire <= now + timedelta(seconds=LEAD):
            # Claimed ahead of its time: wait for it, holding the schedule (again if the event
            # loop's timer, which counts whole milliseconds, woke it a little early).
            while now < due.next_fire:
                await asyncio.sleep((due.next_fire - now).total_seconds())
                now = self.now()
        if due.next_fire is not None and due.next_fire <= now:
            plan = plan_tick(
                config.schedule, due.next_fire, now, catchup=config.catchup, grace=self.grace
            )
            record.next_fire, fires = plan.next_fire, plan.fires
            if plan.missed is not None:
                record.missed += plan.missed.count
                self.events.append(
                    NewTriggerEvent(
                        self.name,
                        SCHEDULE_MISSED,
                        {"catchup": config.catchup, **plan.missed.to_json()},
                    )
                )
        while record.queued and not record.live_runs:
            await self._fire(config, PlannedFire(record.queued.pop(0)), record, queued=True)
        for fire in fires:
            await self._overlapping(config, fire, record)
        await trigger_store.append_trigger_events(self.conn, self.events)
        await store.record_tick(self.conn, record)

    async def _overlapping(
        self, config: ScheduleConfig, fire: PlannedFire, record: TickRecord
    ) -> None:
        waiting = config.overlap == "queue" and record.queued
        if not record.live_runs and not waiting:
            await self._fire(config, fire, record)
            return
        planned = fire.at.isoformat()
        live = [str(run) for run in record.live_runs]
        if config.overlap == "allow":
            await self._fire(config, fire, record)
        elif config.overlap == "replace":
            replaced = await self._cancel(record.live_runs, planned)
            record.live_runs = []
            await self._fire(config, fire, record, replaced=replaced)
        elif config.overlap == "queue" and len(record.queued) < MAX_QUEUED:
            record.queued.append(fire.at)
            self.events.append(
                NewTriggerEvent(
                    self.name, SCHEDULE_QUEUED, {"planned_at": planned, "waiting_for": live}
                )
            )
        else:
            record.skipped += 1
            reason = "overlap" if config.overlap == "skip" else "queue full"
            self.events.append(
                NewTriggerEvent(
                    self.name,
                    SCHEDULE_SKIPPED,
                    {"planned_at": planned, "reason": reason, "live_runs": live},
                )
            )

    async def _cancel(self, runs: list[uuid.UUID], planned: str) -> list[str]:
        """Cancel the live runs a "replace" fire replaces (in id order: the order every
        transaction locks runs in); returns those it canceled."""
        canceled = []
        reason = f"replaced by the fire of schedule {self.name!r} planned at {planned}"
        for run_id in sorted(runs):
            try:
                async with self.conn.transaction():
                    await control.cancel_run(
                        self.conn, run_id, by=SOURCE, reason=reason, data={"schedule": self.name}
                    )
            except RunStateError:  # it ended meanwhile
                continue
            canceled.append(str(run_id))
        return canceled

    async def _fire(
        self,
        config: ScheduleConfig,
        fire: PlannedFire,
        record: TickRecord,
        *,
        queued: bool = False,
        replaced: list[str] | None = None,
    ) -> None:
        """One fire, in a savepoint: a fire that fails (a flow refuses the input, say) is
        recorded as `trigger.fire_failed`, and the tick goes on."""
        lag_ms = self.lag_ms(fire.at)
        details: dict[str, Any] = {"planned_at": fire.at.isoformat(), "lag_ms": round(lag_ms, 3)}
        if fire.catchup:
            details["catchup"] = True
        if queued:
            details["queued"] = True
        if replaced:
            details["replaced"] = replaced
        if self.host is not None:
            details["host"] = self.host
        try:
            async with self.conn.transaction():
                fired = await fire_trigger(
                    self.conn,
                    self.name,
                    config.input_for(self.name, fire.at),
                    source=SOURCE,
                    delivery_key=delivery_key(self.name, fire.at),
                    served=self.served,
                    details=details,
                )
        except (TriggerNotFoundError, TriggerRetiredError) as exc:
            raise _Stale(self.name) from exc
        except psycopg.OperationalError:
            raise
        except (FlowhostError, psycopg.Error) as exc:
            message = exc.message if isinstance(exc, FlowhostError) else str(exc)
            logger.warning("schedule %s did not fire at %s: %s", self.name, fire.at, message)
            record.failed += 1
            error: dict[str, Any] = {"type": type(exc).__name__, "message": storable_text(message)}
            if isinstance(exc, FlowhostError) and "errors" in exc.details:
                error["errors"] = exc.details["errors"]
            self.events.append(
                NewTriggerEvent(
                    self.name,
                    trigger_store.TRIGGER_FIRE_FAILED,
                    {"planned_at": fire.at.isoformat(), "error": error},
                )
            )
            return
        if fired.duplicate:
            # The planned time fired before (its delivery key is taken): nothing started now.
            logger.warning(
                "schedule %s: the fire planned at %s happened already", self.name, fire.at
            )
            return
        record.last_planned_at, record.last_fired_at = fire.at, fired.fired_at
        record.last_lag_ms = lag_ms
        if not (fire.catchup or queued):
            self.on_time.append(fire.at)
            record.lag_fires += 1
            record.lag_total_ms += lag_ms
            record.lag_max_ms = max(record.lag_max_ms, lag_ms)
        record.live_runs = [*record.live_runs, *fired.run_ids][-MAX_TRACKED_RUNS:]

    def now(self) -> datetime:
        """The database's clock: its time at the claim, plus the time since on this host's
        monotonic clock (never ahead of the database's: the claim's time is its start)."""
        return self.due.now + timedelta(seconds=time.monotonic() - self.claimed_at)

    def lag_ms(self, planned: datetime) -> float:
        """From the planned time to now, on the database's clock."""
        return (self.now() - planned).total_seconds() * 1000


def _sleep_for(wake: NextWake) -> float:
    if wake.next_fire is None:
        wait = MAX_SLEEP
    else:
        wait = (wake.next_fire - wake.now).total_seconds() - LEAD
        if wait <= 0:
            wait = BUSY_RETRY  # due, but another host's tick holds it
    if wake.queued:
        wait = min(wait, QUEUE_CHECK)
    return min(wait, MAX_SLEEP)


def _run_of(payload: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(json.loads(payload)["run"])
    except (ValueError, KeyError, TypeError):
        return None
