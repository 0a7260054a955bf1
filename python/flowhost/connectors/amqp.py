"""The AMQP 0-9-1 adapter (aio-pika; RabbitMQ and compatible brokers): one connection per
connector, a channel per queue with the queue's prefetch, each message handed to `handle` and
acknowledged, requeued or rejected (dead-lettered) only after its transaction committed.

Queues are declared durable (classic by default, quorum on request) with the trigger's
dead-letter exchange, and bound to the trigger's exchange with its binding keys; with
`declare = false` the queue (and the exchange) must exist, and are only checked (passive
declare). Several triggers on one queue
share one consumer: each message fires all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from flowhost.connectors.config import ConnectorConfig
from flowhost.connectors.ingest import Verdict
from flowhost.connectors.messages import AmqpMessage, json_safe
from flowhost.connectors.tls import tls_context
from flowhost.connectors.trigger_config import AmqpTrigger
from flowhost.errors import BrokerError, BrokerSupportMissingError

logger = logging.getLogger(__name__)

Handle = Callable[[AmqpMessage, Sequence[AmqpTrigger], int], Awaitable[Verdict]]
# Seconds an ack, a consumer's cancel or a close may take: a connection going away may leave
# them unanswered, and the connector must get on with reconnecting.
SETTLE_TIMEOUT = 5.0


def _aio_pika() -> Any:
    try:
        import aio_pika
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BrokerSupportMissingError(
            "AMQP triggers need aio-pika: pip install 'flowhost[brokers]'"
        ) from exc
    return aio_pika


def queues(triggers: Sequence[AmqpTrigger]) -> dict[str, tuple[AmqpTrigger, ...]]:
    """Queue -> its triggers (by name; the first one's queue settings are the queue's)."""
    found: dict[str, list[AmqpTrigger]] = {}
    for trigger in sorted(triggers, key=lambda t: t.name):
        found.setdefault(trigger.queue, []).append(trigger)
    return {queue: tuple(group) for queue, group in sorted(found.items())}


def queue_arguments(trigger: AmqpTrigger) -> dict[str, Any]:
    arguments: dict[str, Any] = {"x-queue-type": trigger.queue_type}
    if trigger.dead_letter_exchange is not None:
        arguments["x-dead-letter-exchange"] = trigger.dead_letter_exchange
    if trigger.dead_letter_routing_key is not None:
        arguments["x-dead-letter-routing-key"] = trigger.dead_letter_routing_key
    return arguments


def message_of(queue: str, raw: Any) -> AmqpMessage:
    timestamp = raw.timestamp
    return AmqpMessage(
        queue=queue,
        exchange=raw.exchange or "",
        routing_key=raw.routing_key or "",
        body=bytes(raw.body),
        message_id=raw.message_id or None,
        correlation_id=raw.correlation_id or None,
        content_type=raw.content_type or None,
        headers=json_safe(dict(raw.headers or {})),
        timestamp=None if timestamp is None else json_safe(timestamp),
        redelivered=bool(raw.redelivered),
        app_id=raw.app_id or None,
        type=raw.type or None,
    )


async def consume(
    config: ConnectorConfig,
    triggers: Sequence[AmqpTrigger],
    *,
    password: str | None,
    handle: Handle,
    halt: asyncio.Event,
    on_connected: Callable[[], None],
    on_message: Callable[[], None] = lambda: None,
) -> None:
    """Connect, declare, consume every queue of `triggers` until `halt` is set (returns) or
    the connection breaks (BrokerError)."""
    import aiormq

    connection = await _connect(config, password, f"flowhost {config.name}")
    try:
        # aio-pika's `closed()` only resolves on our own close, and its close callbacks do not
        # always run when the broker goes away: aiormq's own closing future does.
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda *_: lost.set())
        connection.transport.connection.closing.add_done_callback(lambda _: lost.set())
        closed = asyncio.ensure_future(lost.wait())
        consumers = []
        # A broker that just restarted may accept the connection and never answer a declare
        # (its queues still recovering): setting up is bounded like connecting.
        try:
            async with asyncio.timeout(config.connect_timeout):
                for queue, group in queues(triggers).items():
                    consumers.append(
                        await _consume_queue(connection, queue, group, handle, on_message)
                    )
        except TimeoutError:
            raise BrokerError(
                f"AMQP {config.address}: no answer declaring or consuming the queues within "
                f"{config.connect_timeout:g}s"
            ) from None
        on_connected()
        halted = asyncio.ensure_future(halt.wait())
        waiting: set[asyncio.Future[Any]] = {closed, halted, *(c.failed for c in consumers)}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            halted.cancel()
        closed.cancel()
        for consumer in consumers:
            await consumer.stop()
        for consumer in consumers:
            if consumer.failed.done() and consumer.failed.exception() is not None:
                raise consumer.failed.exception()  # type: ignore[misc]
        if lost.is_set() and not halt.is_set():
            raise BrokerError(f"AMQP {config.address}: the connection closed")
    except (TimeoutError, aiormq.exceptions.AMQPError, OSError) as exc:
        raise BrokerError(f"AMQP {config.address}: {str(exc) or type(exc).__name__}") from exc
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SETTLE_TIMEOUT):
                await connection.close()


async def _connect(config: ConnectorConfig, password: str | None, name: str) -> Any:
    """A connection to the connector's broker, named `name` in its management views; raises
    BrokerError."""
    aio_pika = _aio_pika()
    import aiormq

    try:
        return await aio_pika.connect(
            host=config.host,
            port=config.port,
            login=config.username or "guest",
            password=password if password is not None else "guest",
            virtualhost=config.vhost,
            ssl=config.tls,
            ssl_context=tls_context(config),
            timeout=config.connect_timeout,
            client_properties={"connection_name": name},
        )
    except (TimeoutError, aiormq.exceptions.AMQPError, OSError) as exc:
        raise BrokerError(f"AMQP {config.address}: {str(exc) or type(exc).__name__}") from exc


class _QueueConsumer:
    """One queue's consumer: messages handled concurrently (up to the prefetch), each settled
    after its transaction."""

    def __init__(
        self,
        queue: Any,
        triggers: Sequence[AmqpTrigger],
        handle: Handle,
        on_message: Callable[[], None],
    ) -> None:
        self._queue = queue
        self._triggers = triggers
        self._max_failures = triggers[0].max_failures
        self._handle = handle
        self._on_message = on_message
        self._tag: str | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._received, no_ack=False)

    async def _received(self, raw: Any) -> None:
        task = asyncio.create_task(self._settle(raw))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _settle(self, raw: Any) -> None:
        self._on_message()
        try:
            message = message_of(self._queue.name, raw)
            verdict = await self._handle(message, self._triggers, self._max_failures)
            try:
                # Bounded: on a connection that is going away a settle may never be answered.
                async with asyncio.timeout(SETTLE_TIMEOUT):
                    if verdict is Verdict.ACK:
                        await raw.ack()
                    elif verdict is Verdict.REJECT:
                        await raw.reject(requeue=False)
                    else:
                        await raw.nack(requeue=True)
            except Exception as exc:  # the channel or connection is gone
                raise BrokerError(
                    f"could not settle a message: {type(exc).__name__} {exc}"
                ) from exc
        except Exception as exc:
            # Not settled: the broker delivers it again once this connection is gone.
            if not self.failed.done():
                self.failed.set_exception(exc)

    async def stop(self) -> None:
        if self._tag is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SETTLE_TIMEOUT):
                    await self._queue.cancel(self._tag)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if not self.failed.done():
            self.failed.set_result(None)


async def _consume_queue(
    connection: Any,
    name: str,
    triggers: Sequence[AmqpTrigger],
    handle: Handle,
    on_message: Callable[[], None],
) -> _QueueConsumer:
    aio_pika = _aio_pika()
    first = triggers[0]
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=first.prefetch)
    if first.declare:
        queue = await channel.declare_queue(name, durable=True, arguments=queue_arguments(first))
    else:
        queue = await channel.declare_queue(name, passive=True)
    for trigger in triggers:
        if trigger.exchange is None or trigger.exchange == "":
            continue
        if trigger.declare:
            exchange = await channel.declare_exchange(
                trigger.exchange, aio_pika.ExchangeType(trigger.exchange_type), durable=True
            )
        else:
            exchange = await channel.get_exchange(trigger.exchange, ensure=True)
        for key in trigger.bindings:
            await queue.bind(exchange, routing_key=key)
    consumer = _QueueConsumer(queue, triggers, handle, on_message)
    await consumer.start()
    return consumer


class AmqpPublisher:
    """A connection that only publishes (`ctx.publish.amqp`), on one channel with publisher
    confirms. RabbitMQ blocks a connection that publishes faster than it can take (flow
    control): kept apart from the consuming connection, it never holds up a consumer's acks."""

    def __init__(self, config: ConnectorConfig, *, password: str | None) -> None:
        self._config = config
        self._password = password
        self._connection: Any = None
        self._channel: Any = None

    @property
    def alive(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def connect(self) -> None:
        """Raises BrokerError."""
        import aiormq

        config = self._config
        self._connection = await _connect(
            config, self._password, f"flowhost {config.name} publisher"
        )
        try:
            async with asyncio.timeout(config.connect_timeout):
                self._channel = await self._connection.channel(publisher_confirms=True)
        except (TimeoutError, aiormq.exceptions.AMQPError, OSError) as exc:
            await self.close()
            raise BrokerError(f"AMQP {config.address}: {str(exc) or type(exc).__name__}") from exc

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        headers: dict[str, Any],
        content_type: str | None,
        message_id: str | None,
        correlation_id: str | None,
        persistent: bool,
    ) -> bool:
        """Returns once the broker confirmed the message: True if a queue took it, False if
        it was returned as unroutable. Raises BrokerError."""
        aio_pika = _aio_pika()
        import aiormq

        config = self._config
        message = aio_pika.Message(
            body,
            headers=headers,
            content_type=content_type,
            message_id=message_id,
            correlation_id=correlation_id,
            delivery_mode=(
                aio_pika.DeliveryMode.PERSISTENT
                if persistent
                else aio_pika.DeliveryMode.NOT_PERSISTENT
            ),
            app_id="flowhost",
        )
        try:
            target = (
                self._channel.default_exchange
                if exchange == ""
                else await self._channel.get_exchange(exchange, ensure=False)
            )
            result = await target.publish(
                message, routing_key, mandatory=True, timeout=config.connect_timeout
            )
        except (
            TimeoutError,
            aiormq.exceptions.AMQPError,
            aio_pika.exceptions.AMQPException,
            OSError,
        ) as exc:
            detail = str(exc) or type(exc).__name__
            raise BrokerError(f"AMQP {config.address}: publishing failed: {detail}") from exc
        return isinstance(result, aiormq.spec.Basic.Ack)

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SETTLE_TIMEOUT):
                    await connection.close()
