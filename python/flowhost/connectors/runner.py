"""One connector on one host: its connection to the broker, kept up with backoff and jitter, and
its state row (`flowhost.connector_states`) that the API, the dashboard and the CLI read.

States: `connecting`, `connected`, `backing_off` (with the attempt number, the next attempt's
time and the last error, never a secret), `standby` (an exclusive connector another host
holds), `stopped`.

Exclusive connectors (a connector with an exclusive trigger): a host connects only while it
holds the connector's lease (`flowhost.connector_leases`), renewed every third of its time to
live; a holder that cannot renew in time disconnects, and another host takes the lease once it
lapsed. Two holders at once (a paused host waking up after its lease lapsed) would only cost
duplicate work: the delivery keys still start each message's runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import psycopg

from flowhost import metrics
from flowhost.connectors import amqp, mqtt
from flowhost.connectors.config import (
    ConnectorConfig,
    backoff_delay,
    password_of,
    without_secrets,
)
from flowhost.connectors.ingest import Ingest, Ingested, Item, Verdict
from flowhost.connectors.messages import AmqpMessage, MqttMessage
from flowhost.connectors.trigger_config import AmqpTrigger, BrokerTrigger, MqttTrigger
from flowhost.db.database import Database
from flowhost.engine.definitions import FlowDefinition
from flowhost.errors import (
    BrokerError,
    BrokerSupportMissingError,
    ConfigurationError,
    DatabaseError,
    DatabaseUnavailableError,
    FlowhostError,
)
from flowhost.store import connectors as store
from flowhost.store.connectors import ConnectorState

logger = logging.getLogger(__name__)

# A standby host looks for a lapsed lease this often (a fraction of the lease's time to live).
STANDBY_POLLS_PER_TTL = 3
# A connected runner rewrites its state row this often (message count, updated_at).
STATE_REFRESH = 5.0
# Transactions a connector runs at once, and messages at most in one of them: a message that
# arrives while they are busy joins the next batch (one commit for all of them). Two: one
# batch fills while the other commits (runs of one flow take its lock, so more would wait).
INGEST_WORKERS = 2
MAX_BATCH = 100


class _Batcher:
    """Messages of one connector to fire, in batches: each worker takes what has queued up
    since its last transaction (at least one message, at most MAX_BATCH) and fires it in one."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Ingested]]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []

    def start(self, name: str) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"connector-{name}-ingest-{n}")
            for n in range(INGEST_WORKERS)
        ]

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def submit(self, item: Item) -> Ingested:
        done: asyncio.Future[Ingested] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, done))
        return await done

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._ingest.batch([item for item, _ in batch])
            except Exception as exc:  # the database: every message of the batch fails
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), result in zip(batch, results, strict=True):
                if not done.done():
                    done.set_result(result)


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectorPlan:
    """What one connector serves: its connection and its triggers (sorted by name)."""

    config: ConnectorConfig
    triggers: tuple[BrokerTrigger, ...]

    @property
    def exclusive(self) -> bool:
        return any(t.exclusive for t in self.triggers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.triggers)


class ConnectorRunner:
    def __init__(
        self,
        plan: ConnectorPlan,
        database: Database,
        host_id: uuid.UUID,
        *,
        served: Callable[[], Mapping[str, FlowDefinition]] | None = None,
        environ: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.plan = plan
        self._database = database
        self._host_id = host_id
        self._environ = os.environ if environ is None else environ
        self._rng = rng or random.Random()
        self._batcher = _Batcher(Ingest(database, plan.config.name, served=served))
        self._state = ConnectorState(
            connector=plan.config.name,
            host_id=host_id,
            type=plan.config.type,
            state="connecting",
            address=plan.config.address,
            exclusive=plan.exclusive,
            triggers=plan.names,
        )
        self._messages = 0
        # State writes started from callbacks (tracked; awaited before shutdown ends).
        self._background: set[asyncio.Task[None]] = set()

    @property
    def state(self) -> ConnectorState:
        return dataclasses.replace(self._state, messages=self._messages)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the connection up until `stop` is set; then close it, release the lease and
        say so in the state row."""
        config = self.plan.config
        attempt = 0
        self._batcher.start(config.name)
        try:
            while not stop.is_set():
                if self.plan.exclusive and not await self._take_lease():
                    await self._set(state="standby", attempt=0, next_attempt_at=None)
                    await _wait(stop, config.lease_ttl / STANDBY_POLLS_PER_TTL)
                    continue
                await self._set(state="connecting", next_attempt_at=None)
                connected = False
                error: str | None = None
                try:
                    connected = await self._session(stop)
                except (
                    BrokerError,
                    BrokerSupportMissingError,
                    ConfigurationError,
                    DatabaseUnavailableError,
                ) as exc:
                    error = exc.message
                except (psycopg.OperationalError, DatabaseError) as exc:
                    error = f"database: {str(exc).splitlines()[0] if str(exc) else exc}"
                except Exception as exc:
                    # Whatever a client library raises: the runner must outlive it.
                    logger.exception("connector %s failed", config.name)
                    error = f"{type(exc).__name__}: {exc}"
                if stop.is_set():
                    break
                attempt = 1 if connected else attempt + 1
                delay = backoff_delay(
                    attempt, config.backoff_initial, config.backoff_max, self._rng.random()
                )
                now = datetime.now(UTC)
                # Client libraries may quote a URL: never a password in logs or state rows.
                message = without_secrets(error or "the connection ended", config, self._environ)
                logger.warning(
                    "connector %s (%s): %s; reconnecting in %.1fs (attempt %d)",
                    config.name,
                    config.address,
                    message,
                    delay,
                    attempt,
                )
                await self._set(
                    state="backing_off",
                    attempt=attempt,
                    next_attempt_at=now + timedelta(seconds=delay),
                    last_error=message,
                    last_error_at=now,
                )
                await _wait(stop, delay)
        finally:
            await self._shutdown()

    async def _session(self, stop: asyncio.Event) -> bool:
        """One connection, until `stop`, a lost lease or an error; True if it connected."""
        config = self.plan.config
        password = password_of(config, self._environ)
        halt = asyncio.Event()
        connected = False

        def on_connected() -> None:
            nonlocal connected
            connected = True
            logger.info("connector %s connected to %s", config.name, config.address)
            self._state = dataclasses.replace(
                self._state,
                state="connected",
                attempt=0,
                next_attempt_at=None,
                connected_at=datetime.now(UTC),
            )
            metrics.observe_connector_state(config.name, "connected")
            self._write_soon()

        async def halt_on_stop() -> None:
            await stop.wait()
            halt.set()

        async def refresh() -> None:
            # The state row's message count, and its updated_at: this host is still there.
            while not halt.is_set():
                await _wait(halt, STATE_REFRESH)
                if connected and not halt.is_set():
                    await self._write()

        watchers = [
            asyncio.create_task(halt_on_stop(), name=f"connector-{config.name}-stop"),
            asyncio.create_task(refresh(), name=f"connector-{config.name}-state"),
        ]
        if self.plan.exclusive:
            watchers.append(
                asyncio.create_task(self._keep_lease(halt), name=f"connector-{config.name}-lease")
            )
        try:
            if config.type == "mqtt":
                await mqtt.consume(
                    config,
                    [t for t in self.plan.triggers if isinstance(t, MqttTrigger)],
                    client_id=self._client_id(),
                    persistent=self._persistent(),
                    password=password,
                    handle=self._mqtt_message,
                    halt=halt,
                    on_connected=on_connected,
                    on_message=self._counted,
                )
            else:
                await amqp.consume(
                    config,
                    [t for t in self.plan.triggers if isinstance(t, AmqpTrigger)],
                    password=password,
                    handle=self._amqp_message,
                    halt=halt,
                    on_connected=on_connected,
                    on_message=self._counted,
                )
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        if not stop.is_set() and halt.is_set():
            raise BrokerError("lost the connector's lease: another host may hold it")
        return connected

    def _client_id(self) -> str:
        base = self.plan.config.client_id or f"flowhost-{self.plan.config.name}"
        # The exclusive holder's id is the connector's: a persistent session passes from one
        # holder to the next. Hosts that all connect need ids of their own.
        return base if self.plan.exclusive else f"{base}-{self._host_id.hex[:12]}"

    def _persistent(self) -> bool:
        # A persistent session needs an id that outlives the host: only exclusive connectors
        # have one (docs/connectors.md).
        return self.plan.config.session == "persistent" and self.plan.exclusive

    def _counted(self) -> None:
        self._messages += 1

    async def _mqtt_message(self, message: MqttMessage, triggers: Sequence[MqttTrigger]) -> Verdict:
        verdict = (await self._batcher.submit(Item(message, tuple(triggers)))).verdict
        metrics.CONNECTOR_MESSAGES.labels(self.plan.config.name, verdict.value).inc()
        return verdict

    async def _amqp_message(
        self, message: AmqpMessage, triggers: Sequence[AmqpTrigger], max_failures: int
    ) -> Verdict:
        item = Item(message, tuple(triggers), max_failures)
        verdict = (await self._batcher.submit(item)).verdict
        metrics.CONNECTOR_MESSAGES.labels(self.plan.config.name, verdict.value).inc()
        return verdict

    # -- leases ---------------------------------------------------------------------------

    async def _take_lease(self) -> bool:
        try:
            async with self._database.connection() as conn:
                return await store.take_lease(
                    conn, self.plan.config.name, self._host_id, self.plan.config.lease_ttl
                )
        except FlowhostError as exc:
            logger.warning("connector %s: could not take its lease: %s", self.plan.config.name, exc)
            return False

    async def _keep_lease(self, halt: asyncio.Event) -> None:
        """Renew the lease every third of its time to live; set `halt` when it is lost or could
        not be renewed before it would lapse."""
        ttl = self.plan.config.lease_ttl
        loop = asyncio.get_running_loop()
        valid_until = loop.time() + ttl
        while not halt.is_set():
            await _wait(halt, ttl / 3)
            if halt.is_set():
                return
            asked = loop.time()
            if await self._take_lease():
                valid_until = asked + ttl
            elif loop.time() >= valid_until - ttl / 3:
                logger.warning("connector %s: lost its lease", self.plan.config.name)
                halt.set()

    # -- the state row --------------------------------------------------------------------

    async def _set(self, **changes: object) -> None:
        self._state = dataclasses.replace(self._state, **changes)  # type: ignore[arg-type]
        metrics.observe_connector_state(self.plan.config.name, self._state.state)
        await self._write()

    async def _write(self) -> None:
        try:
            async with self._database.connection() as conn:
                await store.write_state(conn, self.state)
        except FlowhostError as exc:
            logger.debug("connector %s: state not written: %s", self.plan.config.name, exc)

    def _write_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._write())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _shutdown(self) -> None:
        await self._batcher.stop()
        metrics.observe_connector_state(self.plan.config.name, None)
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        with contextlib.suppress(FlowhostError):
            async with self._database.connection() as conn:
                if self.plan.exclusive:
                    await store.release_lease(conn, self.plan.config.name, self._host_id)
                await store.delete_states(
                    conn, self._host_id, self.plan.config.name, role="consume"
                )


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
