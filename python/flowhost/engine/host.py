"""A host: takes step jobs of the flows it serves off the queue and runs them.

Any number of hosts may share a database. Each records itself in `flowhost.hosts` while it runs,
with the definition (hash) of each flow it serves: that is how `flowhost run` knows whether
somebody will pick up a run it starts, and which runs are parked on a definition nobody serves.
Each host also looks for stalled runs (engine/stalls.py) and fires due schedules
(triggers/scheduler.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import psycopg
from psycopg.types.json import Jsonb

from flowhost import metrics
from flowhost.actions.http import HttpActions
from flowhost.actions.step_actions import StepActions
from flowhost.api.app import create_app
from flowhost.api.server import HttpServer
from flowhost.connectors.manager import Connectors
from flowhost.connectors.publishers import Publishers
from flowhost.db.database import Database
from flowhost.db.queries import QUERIES
from flowhost.engine import scheduling
from flowhost.engine.await_sweeper import AwaitSweeper
from flowhost.engine.definitions import StepDefinition
from flowhost.engine.executor import StepExecutor
from flowhost.engine.housekeeping import Housekeeper
from flowhost.engine.in_flight import CANCEL_CHANNEL
from flowhost.engine.stall_timeouts import stall_timeout
from flowhost.engine.stalls import StallDetector
from flowhost.errors import DatabaseUnavailableError
from flowhost.project import Project
from flowhost.queue.pgqueuer_queue import StepConsumer
from flowhost.store import versions
from flowhost.triggers.event_triggers import CHANNEL as TRIGGERS_CHANNEL
from flowhost.triggers.scheduler import Scheduler
from flowhost.triggers.sync import declarations_of, sync_triggers
from flowhost.workers.supervisor import Supervisor

logger = logging.getLogger(__name__)

# Backoff between attempts to reconnect after the database dropped the host's connections.
# Sessions of the connections on the path of every step (DESIGN §11: emit → next step started).
# Their statements join arrays of ids on primary keys: the generic plan is the right one, and a
# custom plan, which Postgres would otherwise keep making, costs more to make than to run.
HOT_SESSION = {"plan_cache_mode": "force_generic_plan"}
# The queue consumer's: also, its commits (a job picked, a finished job logged, heartbeats) do
# not wait for the WAL flush. Losing the last of them in a crash of Postgres only makes a job
# be picked again, which claims already handle (a stale attempt changes nothing), and a step's
# end, whose commit waits, flushes the WAL written before it, its job's pick included.
QUEUE_SESSION = {**HOT_SESSION, "synchronous_commit": "off"}
HOT_POOL_SIZE = 2  # claims and completions, one batch of each at a time

RECONNECT_DELAY_MIN = 0.5
RECONNECT_DELAY_MAX = 10.0


class Host:
    def __init__(
        self,
        project: Project,
        *,
        watch: bool = False,
        on_ready: Callable[[Project], None] | None = None,
        on_reload: Callable[[Project], None] | None = None,
        http: tuple[str, int] | HttpServer | None = None,
    ) -> None:
        self.project = project
        self.id = uuid.uuid4()
        # Bound now, so that a taken port fails before anything starts, and port 0 is known.
        self._http = HttpServer(*http) if isinstance(http, tuple) else http
        self.public_url = project.settings.public_url or (
            None if self._http is None else self._http.url
        )
        self._watch = watch
        self._on_ready = on_ready
        self._on_reload = on_reload
        self._consumer: StepConsumer | None = None
        self._supervisor: Supervisor | None = None
        self._executor: StepExecutor | None = None
        self._scheduler: Scheduler | None = None
        self._reconnect_delay = RECONNECT_DELAY_MIN

    @property
    def http_url(self) -> str | None:
        """Where this host serves HTTP (its bound address), if it does."""
        return None if self._http is None else self._http.url

    @property
    def supervisor(self) -> Supervisor | None:
        """The child processes of this host, while it serves."""
        return self._supervisor

    @property
    def executor(self) -> StepExecutor | None:
        """What runs steps and their await hooks (`run_hook`) on this host, while it serves."""
        return self._executor

    @property
    def scheduler(self) -> Scheduler | None:
        """What fires due schedules on this host (a new one after each reconnect)."""
        return self._scheduler

    @property
    def attempts_in_flight(self) -> int:
        """Step attempts this host is running now."""
        return 0 if self._executor is None else len(self._executor.in_flight)

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; in-flight steps finish before this returns.

        When Postgres drops the host's connections (a restart, a failover, a terminated
        backend), the host reconnects with backoff. Jobs it held are picked again once their
        heartbeat is stale, and attempts re-run from their claim: nothing recorded is lost.
        """
        settings = self.project.settings
        await self._register_flows()
        # Before the first step runs: its emits are checked against the event triggers.
        async with self.project.database.connection() as conn:
            await self.project.event_triggers.load(conn)
        hot_database = self.project.database.with_session(HOT_SESSION, pool_size=HOT_POOL_SIZE)
        async with (
            hot_database,
            Supervisor(settings, self.project.catalog.commands, host_id=str(self.id)) as supervisor,
            self._step_actions() as actions,
        ):
            self._supervisor = supervisor
            metrics.children_source = supervisor.children_by_runtime
            supervisor.prepare(self._steps())
            executor = self._executor = StepExecutor(
                self.project.database,
                self.project.catalog,
                max_batch=settings.concurrency,
                supervisor=supervisor,
                public_url=self.public_url,
                host_stale_after=settings.host_stale_after,
                adopt_definitions=self._watch,
                hot_database=hot_database,
                on_emit=self.project.event_triggers,
                actions=actions,
            )
            try:
                if self._http is None:
                    await self._serve_until_stopped(stop, executor, hot_database)
                    return
                app = create_app(self.project, public_url=self.public_url)
                # The dashboard lists this host's children (the workers page, a run's page).
                app.state.processes = supervisor.processes
                async with asyncio.TaskGroup() as tasks:
                    # The HTTP side runs beside the host, across database reconnects.
                    tasks.create_task(self._http.serve(app, stop), name="flowhost-http")
                    try:
                        await self._serve_until_stopped(stop, executor, hot_database)
                    finally:
                        stop.set()
            finally:
                self._executor = None
                if metrics.children_source == supervisor.children_by_runtime:
                    metrics.children_source = None

    @contextlib.asynccontextmanager
    async def _step_actions(self) -> AsyncIterator[StepActions]:
        """Steps' ctx.publish and ctx.http: connections opened at their first use, closed
        once the steps are done."""
        settings = self.project.settings
        publishers = (
            Publishers(settings.connectors, self.project.database, self.id)
            if settings.connectors
            else None
        )
        actions = StepActions(
            publishers, HttpActions(secrets=frozenset(settings.http_secrets), environ=os.environ)
        )
        try:
            yield actions
        finally:
            await actions.close()

    def _steps(self) -> list[StepDefinition]:
        return [s for flow in self.project.catalog.flows.values() for s in flow.steps.values()]

    async def _serve_until_stopped(
        self, stop: asyncio.Event, executor: StepExecutor, hot_database: Database
    ) -> None:
        self._reconnect_delay = RECONNECT_DELAY_MIN
        try:
            while not stop.is_set():
                lost: BaseException | None = None
                try:
                    await self._serve_connected(stop, executor)
                except* (psycopg.OperationalError, DatabaseUnavailableError) as group:
                    lost = group.exceptions[0]
                if lost is None:
                    return
                logger.warning(
                    "lost the database (%s); reconnecting in %.1fs",
                    str(lost).splitlines()[0] if str(lost) else type(lost).__name__,
                    self._reconnect_delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._reconnect_delay)
                for pool in (self.project.database, hot_database):
                    await pool.discard_broken()
                self._reconnect_delay = min(2 * self._reconnect_delay, RECONNECT_DELAY_MAX)
        finally:
            with contextlib.suppress(DatabaseUnavailableError):
                async with self.project.database.connection() as conn:
                    await conn.execute(QUERIES["host_gone"], {"id": self.id})

    async def _serve_connected(self, stop: asyncio.Event, executor: StepExecutor) -> None:
        settings = self.project.settings
        database = self.project.database
        event_triggers = self.project.event_triggers
        connectors = Connectors(
            settings.connectors,
            database,
            self.id,
            served=lambda: self.project.catalog.flows,
            interval=settings.trigger_check_interval,
        )

        def triggers_changed(payload: str) -> None:
            event_triggers.notified(payload)
            connectors.notified(payload)

        async with (
            database.dedicated_connection(session=QUEUE_SESSION) as queue_conn,
            database.dedicated_connection() as listen_conn,
        ):
            self._consumer = StepConsumer(
                queue_conn,
                listen_conn,
                executor,
                concurrency=settings.concurrency,
                batch_size=settings.batch_size,
                heartbeat_timeout=settings.heartbeat_timeout,
                notifications={
                    CANCEL_CHANNEL: executor.in_flight.notified,
                    TRIGGERS_CHANNEL: triggers_changed,
                },
            )
            self._consumer.serve(sorted(self.project.catalog.flows))
            await self._record_alive()
            self._reconnect_delay = RECONNECT_DELAY_MIN
            async with asyncio.TaskGroup() as tasks:
                consumer = tasks.create_task(self._consumer.run(), name="flowhost-consumer")
                alive = tasks.create_task(self._heartbeat(stop), name="flowhost-heartbeat")
                stopper = tasks.create_task(
                    executor.in_flight.watch(database, settings.cancel_check_interval),
                    name="flowhost-stop-attempts",
                )
                sweeper = AwaitSweeper(
                    database, lambda: self.project.catalog.flows, on_emit=event_triggers
                )
                sweeping = tasks.create_task(sweeper.run(stop), name="flowhost-await-sweeper")
                # Reloaded at once: notifications sent while reconnecting were lost.
                triggers = tasks.create_task(
                    event_triggers.watch(database, settings.trigger_check_interval, stop),
                    name="flowhost-event-triggers",
                )
                stalls = tasks.create_task(
                    StallDetector(database, settings).run(stop), name="flowhost-stalls"
                )
                housekeeping = tasks.create_task(
                    Housekeeper(database, settings).run(stop), name="flowhost-housekeeping"
                )
                scheduler = self._scheduler = Scheduler(
                    database,
                    lambda: self.project.catalog.flows,
                    grace=settings.schedule_grace,
                    host=str(self.id),
                )
                schedules = tasks.create_task(scheduler.run(stop), name="flowhost-scheduler")
                # Broker connections (MQTT, AMQP) of the registry's broker triggers.
                brokers = tasks.create_task(connectors.run(stop), name="flowhost-connectors")
                watcher = (
                    tasks.create_task(self._watch_functions(stop), name="flowhost-watch")
                    if self._watch
                    else None
                )
                if self._on_ready is not None:
                    self._on_ready(self.project)
                    self._on_ready = None  # once, not again after a reconnect
                await stop.wait()
                self._consumer.stop()
                await consumer  # attempts in flight finish first (or are stopped meanwhile)
                executor.in_flight.stop_watching()
                await stopper
                await triggers
                await alive
                await sweeping
                await stalls
                await housekeeping
                await schedules
                await brokers
                if watcher is not None:
                    await watcher

    async def _register_flows(self) -> None:
        flows = self.project.catalog.flows.values()
        async with self.project.database.transaction() as conn:
            for flow in flows:
                await conn.execute(
                    QUERIES["upsert_flow"],
                    {
                        "name": flow.name,
                        "definition": Jsonb(flow.to_json()),
                        "definition_hash": flow.hash,
                    },
                )
            # Flow control rows before flow_stats rows: the order every transaction takes them
            # in (flowhost.engine.scheduling), or a start racing this could deadlock with it.
            await scheduling.register_flows(conn, flows)
            for flow in flows:
                await conn.execute(QUERIES["ensure_flow_stats"], {"flow": flow.name})
            await versions.register_definitions(
                conn,
                [
                    versions.FlowVersion(flow.name, flow.hash, flow.to_json(), stall_timeout(flow))
                    for flow in self.project.catalog.flows.values()
                ],
            )
            # The functions' triggers and subscriptions, with the flows that declare them.
            catalog = self.project.catalog
            synced = await sync_triggers(
                conn, declarations_of(catalog.flows, catalog.problems, root=catalog.functions_dir)
            )
        if synced.changed:
            logger.info(
                "triggers: %d registered, %d updated, %d retired; %d subscriptions added, "
                "%d removed",
                len(synced.registered),
                len(synced.updated),
                len(synced.retired),
                len(synced.subscribed),
                len(synced.unsubscribed),
            )

    async def _record_alive(self) -> None:
        """Say this host is alive and which flows (definitions) it serves."""
        flows = self.project.catalog.flows
        async with self.project.database.connection() as conn:
            await conn.execute(
                QUERIES["host_alive"],
                {
                    "id": self.id,
                    "hostname": socket.gethostname(),
                    "pid": os.getpid(),
                    "flows": sorted(flows),
                    "definitions": Jsonb({name: flow.hash for name, flow in flows.items()}),
                },
            )

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        interval = self.project.settings.host_heartbeat_interval
        while not stop.is_set():
            try:
                await self._record_alive()
            except Exception:
                logger.exception("could not record this host as alive; retrying")
            try:
                await self._grant_waiting()
            except Exception:
                logger.exception("could not grant free flow-control slots; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def _grant_waiting(self) -> None:
        """Releases grant freed slots themselves; this sweep catches what they could not (a
        waiter whose row was busy), so nothing waits behind a free slot for long."""
        async with self.project.database.transaction() as conn:
            granted = await scheduling.grant_waiting(conn)
        if granted:
            logger.info("started %d runs or steps that waited for a free slot", granted)

    async def _watch_functions(self, stop: asyncio.Event) -> None:
        from watchfiles import awatch

        catalog = self.project.catalog
        # Wakes on file events and at least every second; comparing fingerprints also catches
        # changes made before the watch began or missed by the file system's notifications.
        async for _changes in awatch(
            catalog.functions_dir,
            stop_event=stop,
            debounce=200,
            recursive=True,
            yield_on_timeout=True,
            rust_timeout=1000,
        ):
            if catalog.fingerprint() == catalog.loaded_fingerprint:
                continue
            try:
                await catalog.reload()
            except Exception:
                logger.exception(
                    "reloading %s failed; keeping the previous functions", catalog.functions_dir
                )
                continue
            await self._register_flows()
            if self._supervisor is not None:
                await self._supervisor.forget_loaded_code()
                self._supervisor.prepare(self._steps())
            if self._consumer is not None:
                self._consumer.serve(sorted(catalog.flows))
            await self._record_alive()
            await self._adopt_definitions()
            if self._on_reload is not None:
                self._on_reload(self.project)

    async def _adopt_definitions(self) -> None:
        """`flowhost dev` after a reload: runs in progress move onto the new definitions, so
        that editing code does not park your own runs. A run with a scheduled step the new
        definition lacks stays parked (`flowhost runs parked`)."""
        for flow in self.project.catalog.flows.values():
            try:
                async with self.project.database.transaction() as conn:
                    moved = await versions.migrate_runs(
                        conn,
                        flow=flow.name,
                        to_hash=flow.hash,
                        steps=sorted(flow.steps),
                        by="flowhost dev",
                    )
            except Exception:
                logger.exception("moving runs of %s onto its new definition failed", flow.name)
                continue
            if moved.moved:
                logger.info(
                    "%d runs of %s now use the reloaded definition", len(moved.moved), flow.name
                )
            for run_id, missing in moved.refused.items():
                logger.warning(
                    "run %s of %s stays on its old definition: its steps %s are gone",
                    run_id,
                    flow.name,
                    ", ".join(missing),
                )
