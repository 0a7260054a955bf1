"""The connectors of one host: a runner per connector that active mqtt/amqp triggers use,
started from the registry and restarted when those triggers change.

The registry's generation moves with every change of a trigger's type, status or config, and
is announced at commit (NOTIFY flowhost_triggers): the host reloads then, and also compares the
generation every `interval` seconds, which catches a notification missed while reconnecting.
A connector whose set of triggers (or their configs) changed is restarted; the others keep
their connections.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowhost.connectors.config import ConnectorConfig
from flowhost.connectors.runner import ConnectorPlan, ConnectorRunner
from flowhost.connectors.trigger_config import CHECKS, PARSERS, BrokerTrigger
from flowhost.db.database import Database
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.wakeups import first_of
from flowhost.errors import DatabaseUnavailableError, FlowhostError
from flowhost.store import connectors as store

logger = logging.getLogger(__name__)

# State rows of a host unseen this long are deleted (by any host, at most this often).
DEAD_HOST_STATES_AFTER = 300.0


def plans(
    connectors: Sequence[ConnectorConfig], triggers: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, ConnectorPlan], list[str]]:
    """Connector name -> its plan, from the registry's active broker triggers; and the
    problems (a trigger naming a connector this host does not know, or of another type)."""
    by_name = {c.name: c for c in connectors}
    grouped: dict[str, list[BrokerTrigger]] = {}
    problems = []
    for row in triggers:
        name, kind, config = row["name"], row["type"], row["config"]
        errors = CHECKS[kind](name, config)
        if errors:
            problems.append(f"trigger {name}: {errors[0].pointer}: {errors[0].message}")
            continue
        trigger = PARSERS[kind](name, config)
        connector = by_name.get(trigger.connector)
        if connector is None:
            problems.append(
                f"trigger {name}: no connector {trigger.connector!r} in this host's "
                "flowhost.toml [connectors]"
            )
        elif connector.type != kind:
            problems.append(
                f"trigger {name} is {kind} but connector {connector.name} is {connector.type}"
            )
        else:
            grouped.setdefault(connector.name, []).append(trigger)
    found = {
        name: ConnectorPlan(by_name[name], tuple(sorted(group, key=lambda t: t.name)))
        for name, group in sorted(grouped.items())
    }
    return found, problems


class Connectors:
    """Runs the connectors this host's registry asks for (see the module's doc)."""

    def __init__(
        self,
        connectors: Sequence[ConnectorConfig],
        database: Database,
        host_id: uuid.UUID,
        *,
        served: Callable[[], Mapping[str, FlowDefinition]] | None = None,
        interval: float = 2.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._connectors = tuple(connectors)
        self._database = database
        self._host_id = host_id
        self._served = served
        self._interval = interval
        self._environ = environ
        self._wake = asyncio.Event()
        self._generation: int | None = None
        self._running: dict[str, tuple[ConnectorRunner, asyncio.Event, asyncio.Task[None]]] = {}
        self._problems: list[str] = []

    def notified(self, payload: str) -> None:
        """A NOTIFY on flowhost_triggers (payload: the registry's new generation)."""
        try:
            generation: int | None = int(payload)
        except ValueError:
            generation = None
        if generation is None or generation != self._generation:
            self._wake.set()

    @property
    def runners(self) -> dict[str, ConnectorRunner]:
        return {name: entry[0] for name, entry in self._running.items()}

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; then every connection closes and its state row goes."""
        loop = asyncio.get_running_loop()
        swept = loop.time()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    async with self._database.connection() as conn:
                        generation, triggers = await store.broker_triggers(conn)
                        if loop.time() - swept > DEAD_HOST_STATES_AFTER:
                            swept = loop.time()
                            await store.forget_dead_states(conn, DEAD_HOST_STATES_AFTER)
                except DatabaseUnavailableError:
                    raise
                except FlowhostError as exc:
                    logger.warning("could not read the broker triggers: %s", exc)
                else:
                    if generation != self._generation:
                        await self._apply(generation, triggers)
                await first_of(stop, self._wake, None, self._interval, name="connectors")
        finally:
            await self._stop_all(list(self._running))

    async def _apply(self, generation: int, triggers: Sequence[Mapping[str, Any]]) -> None:
        wanted, problems = plans(self._connectors, triggers)
        for problem in problems:
            if problem not in self._problems:
                logger.warning("connectors: %s", problem)
        self._problems = problems
        changed = [
            name
            for name, (runner, _, _) in self._running.items()
            if wanted.get(name) != runner.plan
        ]
        await self._stop_all(changed)
        for name, plan in wanted.items():
            if name in self._running:
                continue
            runner = ConnectorRunner(
                plan,
                self._database,
                self._host_id,
                served=self._served,
                environ=self._environ,
            )
            halt = asyncio.Event()
            task = asyncio.create_task(runner.run(halt), name=f"flowhost-connector-{name}")
            self._running[name] = (runner, halt, task)
            logger.info(
                "connector %s (%s): triggers %s%s",
                name,
                plan.config.address,
                ", ".join(plan.names),
                " (exclusive)" if plan.exclusive else "",
            )
        self._generation = generation

    async def _stop_all(self, names: Sequence[str]) -> None:
        entries = [self._running.pop(name) for name in names if name in self._running]
        for _, halt, _ in entries:
            halt.set()
        for runner, _, task in entries:
            try:
                await task
            except Exception:
                logger.exception("connector %s ended with an error", runner.plan.config.name)


async def connector_states(
    database: Database, *, connector: str | None = None, stale_after: float = 6.0
) -> list[store.ConnectorState]:
    """Every host's connection state per connector (for the API, the dashboard and the CLI):
    `host_alive` false marks rows of a host that stopped heartbeating (killed)."""
    async with database.connection() as conn:
        return await store.read_states(conn, connector=connector, stale_after=stale_after)
