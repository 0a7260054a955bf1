"""A message from a broker as flowhost reads it: its run input, and the key that makes a
redelivery start nothing. Pure: no I/O.

Exactly once into runs (docs/connectors.md): a message's delivery key is written with its runs
in one transaction, so a redelivery (after a crash, a reconnect, a broker restart) finds the key
taken and starts nothing. The key is

- the message's own id where it has one: AMQP `message_id`, or for MQTT the user property
  named by the trigger's `id_property` (MQTT 5); such keys are kept for the delivery_retention
  setting (housekeeping prunes older ones);
- else a SHA-256 of where it came from (MQTT topic; AMQP exchange and routing key) and its
  bytes. Two *different* messages with identical bytes on the same topic are then the same
  delivery: within the trigger's `dedupe_window` (seconds) the second starts nothing. After the
  window a repeat is a new delivery. `dedupe_window = 0` turns this off (every message fires,
  and a redelivery fires again).

MQTT packet identifiers are not ids: a broker reuses them, and gives a message another one when
it redelivers it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from flowhost.connectors.trigger_config import AmqpTrigger, MqttTrigger

MAX_ID_LENGTH = 200
PREVIEW_BYTES = 256


class PayloadError(ValueError):
    """The payload cannot be read as the trigger's `payload` format."""


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryKey:
    key: str
    # Seconds after which an identical message is a new delivery; None: never (an id).
    window: float | None


def decode_payload(body: bytes, payload_format: str) -> Any:
    """The payload as a run sees it: JSON data, text, or base64 text for raw bytes."""
    if payload_format == "bytes":
        return base64.b64encode(body).decode("ascii")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"the payload is not UTF-8 text: {exc}") from None
    if payload_format == "text":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"the payload is not JSON: {exc}") from None


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()


def _id_key(prefix: str, value: str) -> str:
    if len(value) > MAX_ID_LENGTH:
        return f"{prefix}:id-sha256:{_digest(value.encode())}"
    return f"{prefix}:id:{value}"


def preview(body: bytes) -> str:
    """The start of a payload, for a rejection's record."""
    text = body[:PREVIEW_BYTES].decode("utf-8", errors="replace")
    return text + ("…" if len(body) > PREVIEW_BYTES else "")


def json_safe(value: Any) -> Any:
    """Broker property values (bytes, dates, decimals, nested tables) as JSON data."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    return str(value)


# -- MQTT ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class MqttMessage:
    topic: str
    body: bytes
    qos: int
    retain: bool
    # MQTT 5 properties as JSON (`user_properties`: [[name, value], ...]); {} for 3.1.1.
    properties: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def user_property(self, name: str) -> str | None:
        for pair in self.properties.get("user_properties", ()):
            if len(pair) == 2 and pair[0] == name:
                return str(pair[1])
        return None

    def run_input(self, trigger: MqttTrigger, connector: str) -> dict[str, Any]:
        """Raises PayloadError."""
        data = {
            "connector": connector,
            "topic": self.topic,
            "payload": decode_payload(self.body, trigger.payload),
            "qos": self.qos,
            "retain": self.retain,
            "properties": dict(self.properties),
        }
        if trigger.payload == "bytes":
            data["encoding"] = "base64"
        return data

    def delivery_key(self, trigger: MqttTrigger) -> DeliveryKey | None:
        if trigger.id_property is not None:
            value = self.user_property(trigger.id_property)
            if value:
                return DeliveryKey(_id_key("mqtt", value), None)
        if trigger.dedupe_window <= 0:
            return None
        return DeliveryKey(
            f"mqtt:sha256:{_digest(self.topic.encode(), self.body)}", trigger.dedupe_window
        )

    def failure_key(self) -> str:
        return f"mqtt:sha256:{_digest(self.topic.encode(), self.body)}"

    def details(self) -> dict[str, Any]:
        return {"topic": self.topic, "qos": self.qos, "retain": self.retain, "size": len(self.body)}


# -- AMQP ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class AmqpMessage:
    queue: str
    exchange: str
    routing_key: str
    body: bytes
    message_id: str | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    headers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    timestamp: str | None = None
    redelivered: bool = False
    app_id: str | None = None
    type: str | None = None

    def run_input(self, trigger: AmqpTrigger, connector: str) -> dict[str, Any]:
        """Raises PayloadError."""
        data = {
            "connector": connector,
            "queue": self.queue,
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "payload": decode_payload(self.body, trigger.payload),
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "content_type": self.content_type,
            "headers": json_safe(dict(self.headers)),
            "timestamp": self.timestamp,
            "redelivered": self.redelivered,
            "app_id": self.app_id,
            "type": self.type,
        }
        if trigger.payload == "bytes":
            data["encoding"] = "base64"
        return data

    def delivery_key(self, trigger: AmqpTrigger) -> DeliveryKey | None:
        if self.message_id:
            return DeliveryKey(_id_key("amqp", self.message_id), None)
        if trigger.dedupe_window <= 0:
            return None
        return DeliveryKey(self.failure_key(), trigger.dedupe_window)

    def failure_key(self) -> str:
        if self.message_id:
            return _id_key("amqp", self.message_id)
        digest = _digest(self.exchange.encode(), self.routing_key.encode(), self.body)
        return f"amqp:sha256:{digest}"

    def details(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "message_id": self.message_id,
            "size": len(self.body),
        }


BrokerMessage = MqttMessage | AmqpMessage
