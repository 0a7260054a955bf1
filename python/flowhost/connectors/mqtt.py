"""The MQTT adapter (aiomqtt on paho-mqtt; MQTT 3.1.1 and 5): one connection per connector,
subscribed to the topic filters of its triggers, each message handed to `handle` and
acknowledged only after its runs committed.

Acknowledgement after commit. paho-mqtt can leave PUBACK (QoS 1) and PUBCOMP (QoS 2) to the
application (`manual_ack`); aiomqtt 2.x does not expose that switch yet (its issue #345), so
this module turns it on on aiomqtt's paho client (`client._client`), the workaround aiomqtt's
maintainers point to. Acks go out in the order messages arrived (MQTT 3.1.1 §4.6), while up to
`MAX_IN_FLIGHT` messages are fired at once.

QoS 2: paho sends PUBREC as soon as the PUBLISH arrives (it cannot be deferred), and the broker
then considers the message delivered: a host killed between that PUBREC and its commit loses
the message. QoS 1 has no such window (the broker resends until PUBACK), which is why flowhost's
exactly-once rule (QoS 1 + the delivery key) recommends QoS 1.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from flowhost._core import TriggerIndex
from flowhost.connectors.config import ConnectorConfig
from flowhost.connectors.ingest import Verdict
from flowhost.connectors.messages import MqttMessage, json_safe
from flowhost.connectors.tls import tls_context
from flowhost.connectors.trigger_config import MqttTrigger
from flowhost.errors import BrokerError, BrokerSupportMissingError, EventNameError

logger = logging.getLogger(__name__)

# Messages fired at once on one connection (their acks still go out in order).
MAX_IN_FLIGHT = 64

Handle = Callable[[MqttMessage, Sequence[MqttTrigger]], Awaitable[Verdict]]


def _aiomqtt() -> Any:
    try:
        import aiomqtt
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BrokerSupportMissingError(
            "MQTT triggers need aiomqtt: pip install 'flowhost[brokers]'"
        ) from exc
    return aiomqtt


def subscriptions(triggers: Sequence[MqttTrigger]) -> dict[str, int]:
    """Topic filter -> the highest QoS a trigger asks of it."""
    found: dict[str, int] = {}
    for trigger in triggers:
        for topic in trigger.topics:
            found[topic] = max(found.get(topic, 0), trigger.qos)
    return dict(sorted(found.items()))


def trigger_index(triggers: Sequence[MqttTrigger]) -> TriggerIndex:
    index = TriggerIndex(syntax="mqtt")
    for trigger in triggers:
        for topic in trigger.topics:
            index.add(topic, trigger.name)
    return index


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def properties_json(properties: Any) -> dict[str, Any]:
    """MQTT 5 PUBLISH properties as JSON, snake_case names; user properties as [[k, v], ...]."""
    if properties is None:
        return {}
    found: dict[str, Any] = {}
    for name, value in properties.json().items():
        if name == "UserProperty":
            found["user_properties"] = [[str(k), str(v)] for k, v in value]
        else:
            found[_CAMEL.sub("_", name).lower()] = json_safe(value)
    return found


class _InOrderAcks:
    """Sends each message's ack once it and every message before it are done."""

    def __init__(self, send: Callable[[int, int], object]) -> None:
        self._send = send
        self._pending: collections.deque[list[Any]] = collections.deque()

    def received(self, mid: int, qos: int) -> list[Any]:
        entry = [mid, qos, False]
        self._pending.append(entry)
        return entry

    def done(self, entry: list[Any]) -> None:
        entry[2] = True
        while self._pending and self._pending[0][2]:
            mid, qos, _ = self._pending.popleft()
            if qos > 0:
                self._send(mid, qos)


def _client(
    config: ConnectorConfig, *, client_id: str, password: str | None, persistent: bool
) -> Any:
    """An aiomqtt client of the connector (not connected yet): a persistent session or a clean
    one, under MQTT 3.1.1 or 5 as configured."""
    aiomqtt = _aiomqtt()
    paho = aiomqtt.client.mqtt
    version5 = config.protocol == "5"
    options: dict[str, Any] = {}
    if version5:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        connect_properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        connect_properties.SessionExpiryInterval = config.session_expiry if persistent else 0
        options["properties"] = connect_properties
        options["clean_start"] = paho.MQTT_CLEAN_START_FIRST_ONLY if not persistent else False
    else:
        options["clean_session"] = not persistent
    return aiomqtt.Client(
        config.host,
        config.port,
        username=config.username,
        password=password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5 if version5 else aiomqtt.ProtocolVersion.V311,
        tls_context=tls_context(config),
        tls_insecure=config.tls_insecure if config.tls else None,
        keepalive=config.keepalive,
        timeout=config.connect_timeout,
        logger=logger,
        **options,
    )


async def consume(
    config: ConnectorConfig,
    triggers: Sequence[MqttTrigger],
    *,
    client_id: str,
    persistent: bool,
    password: str | None,
    handle: Handle,
    halt: asyncio.Event,
    on_connected: Callable[[], None],
    on_message: Callable[[], None] = lambda: None,
) -> None:
    """Connect, subscribe and hand messages to `handle` until `halt` is set (returns) or the
    connection breaks (BrokerError)."""
    aiomqtt = _aiomqtt()
    client = _client(config, client_id=client_id, password=password, persistent=persistent)
    # Acks after commit: see the module's doc.
    client._client.manual_ack_set(True)
    index = trigger_index(triggers)
    by_name = {t.name: t for t in triggers}
    try:
        async with client:
            wanted = list(subscriptions(triggers).items())
            if wanted:
                await client.subscribe(wanted)
            on_connected()
            await _receive(client, index, by_name, handle, halt, on_message)
    except aiomqtt.MqttError as exc:
        raise BrokerError(f"MQTT {config.address}: {exc}") from exc
    except OSError as exc:
        raise BrokerError(f"MQTT {config.address}: {exc}") from exc


async def _receive(
    client: Any,
    index: TriggerIndex,
    by_name: dict[str, MqttTrigger],
    handle: Handle,
    halt: asyncio.Event,
    on_message: Callable[[], None],
) -> None:
    acks = _InOrderAcks(client._client.ack)
    room = asyncio.Semaphore(MAX_IN_FLIGHT)
    messages = aiter(client.messages)
    failed: list[BaseException] = []
    stopping = asyncio.Event()
    running: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failed.append(task.exception())  # type: ignore[arg-type]
            stopping.set()

    halted = asyncio.ensure_future(halt.wait())
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        while not failed:
            await room.acquire()
            incoming = asyncio.ensure_future(anext(messages))
            await asyncio.wait({incoming, halted, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not incoming.done():
                incoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await incoming
                room.release()
                break
            raw = incoming.result()  # raises MqttError when the connection broke
            on_message()
            entry = acks.received(raw.mid, raw.qos)
            task = asyncio.create_task(_one(raw, index, by_name, handle, acks, entry, room))
            running.add(task)
            task.add_done_callback(finished)
    finally:
        halted.cancel()
        stopped.cancel()
        # Messages in flight finish (and are acked, in order) before the connection closes.
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    if failed:
        raise failed[0]


async def _one(
    raw: Any,
    index: TriggerIndex,
    by_name: dict[str, MqttTrigger],
    handle: Handle,
    acks: _InOrderAcks,
    entry: list[Any],
    room: asyncio.Semaphore,
) -> None:
    try:
        topic = raw.topic.value
        try:
            names = sorted({str(name) for name in index.match(topic)})
        except EventNameError:
            names = []
        triggers = [by_name[name] for name in names]
        if triggers:
            body = raw.payload if isinstance(raw.payload, bytes) else str(raw.payload).encode()
            message = MqttMessage(
                topic=topic,
                body=bytes(body),
                qos=raw.qos,
                retain=bool(raw.retain),
                properties=properties_json(raw.properties),
            )
            await handle(message, triggers)
        else:
            # A persistent session can hold messages of filters no trigger has any more.
            logger.info("MQTT message on %s matches no trigger: acknowledged", topic)
        acks.done(entry)
    finally:
        room.release()


class MqttPublisher:
    """A connection that only publishes (`ctx.publish.mqtt`): a clean session under a client
    id of its own, so that it never takes over a consuming connection's session."""

    def __init__(self, config: ConnectorConfig, *, client_id: str, password: str | None) -> None:
        self._config = config
        self._client_id = client_id
        self._password = password
        self._client: Any = None

    @property
    def alive(self) -> bool:
        return self._client is not None and bool(self._client._client.is_connected())

    async def connect(self) -> None:
        """Raises BrokerError."""
        aiomqtt = _aiomqtt()
        config = self._config
        client = _client(
            config, client_id=self._client_id, password=self._password, persistent=False
        )
        try:
            await client.__aenter__()
        except (aiomqtt.MqttError, OSError) as exc:
            raise BrokerError(f"MQTT {config.address}: {exc}") from exc
        self._client = client

    async def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, properties: dict[str, Any]
    ) -> None:
        """Returns once the broker has the message (QoS 1: PUBACK, 2: PUBCOMP); raises
        BrokerError, ValueError for properties under MQTT 3.1.1."""
        aiomqtt = _aiomqtt()
        config = self._config
        publish_properties = None
        if properties:
            if config.protocol != "5":
                raise ValueError(
                    f"MQTT properties need protocol 5; connector {config.name} uses "
                    f"{config.protocol}"
                )
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            publish_properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if "content_type" in properties:
                publish_properties.ContentType = properties["content_type"]
            if properties.get("user_properties"):
                publish_properties.UserProperty = [
                    (str(k), str(v)) for k, v in properties["user_properties"]
                ]
        try:
            await self._client.publish(
                topic,
                payload,
                qos=qos,
                retain=retain,
                properties=publish_properties,
                timeout=config.connect_timeout,
            )
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"MQTT {config.address}: publishing failed: {exc}") from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
