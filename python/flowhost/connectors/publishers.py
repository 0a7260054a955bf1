"""The publishing side of the connectors on one host: one connection per connector, opened at
its first publish and shared by every step the host runs (in-process or in a child), kept
apart from the consuming connection (which exists only where triggers use the connector, and
for an exclusive connector only on the lease holder; see docs/connectors.md#actions-out).

A publish on a connection that broke reconnects first; a connect that failed makes the next
publishes fail at once until its backoff (the connector's, with full jitter) has passed, so
that a broker that is down does not hold every step for a connect timeout. The state of each
publishing connection is a `connector_states` row of role `publish`, like the consuming ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from flowhost import metrics
from flowhost.connectors import amqp, mqtt
from flowhost.connectors.config import (
    ConnectorConfig,
    backoff_delay,
    password_of,
    without_secrets,
)
from flowhost.db.database import Database
from flowhost.errors import (
    BrokerError,
    BrokerSupportMissingError,
    ConfigurationError,
    FlowhostError,
)
from flowhost.store import connectors as store
from flowhost.store.connectors import ConnectorState

logger = logging.getLogger(__name__)

# The state row's message count is rewritten at most this often while publishing.
STATE_REFRESH = 5.0


class _Link:
    """One connector's publishing connection and its state."""

    def __init__(self, config: ConnectorConfig, host_id: uuid.UUID) -> None:
        self.config = config
        self.connection: Any = None
        self.lock = asyncio.Lock()
        self.retry_at = 0.0  # loop time before which a connect is not tried again
        self.written_at = 0.0
        self.state = ConnectorState(
            connector=config.name,
            host_id=host_id,
            type=config.type,
            state="connecting",
            address=config.address,
            role="publish",
        )


class Publishers:
    """The publishing connections of one host (see the module's doc)."""

    def __init__(
        self,
        connectors: Sequence[ConnectorConfig],
        database: Database,
        host_id: uuid.UUID,
        *,
        environ: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._links = {c.name: _Link(c, host_id) for c in connectors}
        self._database = database
        self._host_id = host_id
        self._environ = os.environ if environ is None else environ
        self._rng = rng or random.Random()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    def connector(self, kind: str, name: str | None) -> ConnectorConfig:
        """The connector a publish names, or the only one of `kind`; ValueError otherwise."""
        if name is not None:
            link = self._links.get(name)
            if link is None:
                raise ValueError(f"no connector {name!r} in this host's flowhost.toml")
            if link.config.type != kind:
                raise ValueError(f"connector {name!r} is {link.config.type}, not {kind}")
            return link.config
        found = [link.config for link in self._links.values() if link.config.type == kind]
        if len(found) != 1:
            names = ", ".join(c.name for c in found) or "none"
            raise ValueError(
                f"name the {kind} connector to publish with (connector=...): this host has "
                f"{len(found)} ({names})"
            )
        return found[0]

    async def mqtt(
        self,
        config: ConnectorConfig,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool,
        properties: dict[str, Any],
    ) -> None:
        link = self._links[config.name]
        connection = await self._connected(link)
        await self._published(
            link, connection.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        )

    async def amqp(
        self, config: ConnectorConfig, exchange: str, routing_key: str, body: bytes, **options: Any
    ) -> bool:
        link = self._links[config.name]
        connection = await self._connected(link)
        routed = await self._published(
            link, connection.publish(exchange, routing_key, body, **options)
        )
        return bool(routed)

    async def close(self) -> None:
        """Close every connection and delete this host's publish state rows."""
        self._closed = True
        for link in self._links.values():
            async with link.lock:
                if link.connection is not None:
                    await link.connection.close()
                    link.connection = None
                    metrics.observe_connector_state(link.config.name, None, role="publish")
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        with contextlib.suppress(FlowhostError):
            async with self._database.connection() as conn:
                await store.delete_states(conn, self._host_id, role="publish")

    # -- connections ----------------------------------------------------------------------

    async def _connected(self, link: _Link) -> Any:
        if self._closed:
            raise BrokerError("the host is stopping: nothing more is published")
        async with link.lock:
            if link.connection is not None and link.connection.alive:
                return link.connection
            if link.connection is not None:
                await link.connection.close()
                link.connection = None
            loop = asyncio.get_running_loop()
            if loop.time() < link.retry_at:
                raise BrokerError(
                    f"connector {link.config.name} is unreachable ({link.state.last_error}); "
                    f"next attempt in {link.retry_at - loop.time():.1f}s"
                )
            try:
                connection = self._open(link.config)
                await connection.connect()
            except (BrokerError, BrokerSupportMissingError, ConfigurationError) as exc:
                await self._failed(link, exc.message)
                raise
            link.connection = connection
            link.retry_at = 0.0
            link.state = dataclasses.replace(
                link.state,
                state="connected",
                attempt=0,
                next_attempt_at=None,
                connected_at=datetime.now(UTC),
            )
            await self._write(link)
            logger.info("connector %s: publishing to %s", link.config.name, link.config.address)
            return connection

    def _open(self, config: ConnectorConfig) -> Any:
        password = password_of(config, self._environ)
        if config.type == "mqtt":
            base = config.client_id or f"flowhost-{config.name}"
            client_id = f"{base}-publish-{self._host_id.hex[:12]}"
            return mqtt.MqttPublisher(config, client_id=client_id, password=password)
        return amqp.AmqpPublisher(config, password=password)

    async def _published(self, link: _Link, publishing: Any) -> Any:
        """Await a publish; a broken connection is closed (the next publish reconnects)."""
        try:
            result = await publishing
        except BrokerError as exc:
            metrics.CONNECTOR_PUBLISHES.labels(link.config.name, "failed").inc()
            async with link.lock:
                if link.connection is not None and not link.connection.alive:
                    await link.connection.close()
                    link.connection = None
                    link.state = dataclasses.replace(
                        link.state,
                        state="connecting",
                        last_error=without_secrets(exc.message, link.config, self._environ),
                    )
                    await self._write(link)
            raise
        metrics.CONNECTOR_PUBLISHES.labels(link.config.name, "published").inc()
        link.state = dataclasses.replace(link.state, messages=link.state.messages + 1)
        if asyncio.get_running_loop().time() - link.written_at > STATE_REFRESH:
            self._write_soon(link)
        return result

    async def _failed(self, link: _Link, error: str) -> None:
        attempt = link.state.attempt + 1
        delay = backoff_delay(
            attempt, link.config.backoff_initial, link.config.backoff_max, self._rng.random()
        )
        link.retry_at = asyncio.get_running_loop().time() + delay
        now = datetime.now(UTC)
        message = without_secrets(error, link.config, self._environ)
        logger.warning(
            "connector %s (%s): cannot publish: %s; next connect in %.1fs",
            link.config.name,
            link.config.address,
            message,
            delay,
        )
        link.state = dataclasses.replace(
            link.state,
            state="backing_off",
            attempt=attempt,
            next_attempt_at=now + timedelta(seconds=delay),
            last_error=message,
            last_error_at=now,
        )
        await self._write(link)

    # -- the state rows -------------------------------------------------------------------

    async def _write(self, link: _Link) -> None:
        link.written_at = asyncio.get_running_loop().time()
        metrics.observe_connector_state(link.config.name, link.state.state, role="publish")
        try:
            async with self._database.connection() as conn:
                await store.write_state(conn, link.state)
        except FlowhostError as exc:
            logger.debug("connector %s: state not written: %s", link.config.name, exc)

    def _write_soon(self, link: _Link) -> None:
        link.written_at = asyncio.get_running_loop().time()
        task = asyncio.get_running_loop().create_task(self._write(link))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
