"""The configs of `mqtt` and `amqp` triggers: their checks (one `FieldError` per problem, for
the registry's 422s and discovery's messages) and their parsed form. Pure: no I/O.

mqtt: `{"connector", "topics", "qos", "payload", "id_property", "dedupe_window", "exclusive"}`
amqp: `{"connector", "queue", "declare", "queue_type", "exchange", "exchange_type",
"binding_keys", "prefetch", "max_failures", "dead_letter_exchange", "dead_letter_routing_key",
"payload", "dedupe_window", "exclusive"}`; docs/connectors.md describes each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from flowhost._core import TriggerIndex
from flowhost.connectors.config import NAME_PATTERN
from flowhost.errors import PatternError

PAYLOAD_FORMATS = ("json", "text", "bytes")
EXCHANGE_TYPES = ("direct", "topic", "fanout")
QUEUE_TYPES = ("quorum", "classic")
# Identical messages (same topic or routing, same bytes) within this many seconds are one
# delivery, unless the message carries an id (docs/connectors.md, "Exactly once").
DEFAULT_DEDUPE_WINDOW = 600.0
DEFAULT_PREFETCH = 32
DEFAULT_MAX_FAILURES = 3
MAX_AMQP_NAME = 255

# The generic keys every trigger type takes (checked by the registry).
_GENERIC = {"schema"}
_MQTT_KEYS = {"connector", "topics", "qos", "payload", "id_property", "dedupe_window", "exclusive"}
_AMQP_KEYS = {
    "connector",
    "queue",
    "declare",
    "queue_type",
    "exchange",
    "exchange_type",
    "binding_keys",
    "prefetch",
    "max_failures",
    "dead_letter_exchange",
    "dead_letter_routing_key",
    "payload",
    "dedupe_window",
    "exclusive",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    pointer: str
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class MqttTrigger:
    name: str
    connector: str
    topics: tuple[str, ...]
    qos: int = 1
    payload: str = "json"
    id_property: str | None = None
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW
    exclusive: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class AmqpTrigger:
    name: str
    connector: str
    queue: str
    declare: bool = True
    # Classic by default: RabbitMQ 3.10's quorum queues did not recover from a SIGKILL of the
    # node here (docs/connectors.md); a durable classic queue does.
    queue_type: str = "classic"
    exchange: str | None = None
    exchange_type: str = "direct"
    binding_keys: tuple[str, ...] = ()
    prefetch: int = DEFAULT_PREFETCH
    max_failures: int = DEFAULT_MAX_FAILURES
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    payload: str = "json"
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW
    exclusive: bool = False

    @property
    def bindings(self) -> tuple[str, ...]:
        """Binding keys to bind the queue with (a fanout exchange takes one empty key)."""
        if self.exchange is None:
            return ()
        if self.exchange_type == "fanout":
            return ("",)
        return self.binding_keys or (self.queue,)


BrokerTrigger = MqttTrigger | AmqpTrigger


def _unknown(config: Mapping[str, Any], known: set[str]) -> list[Problem]:
    return [
        Problem(f"/config/{key}", f"unknown key (known: {', '.join(sorted(known))})")
        for key in sorted(set(config) - known - _GENERIC)
    ]


def _common(config: Mapping[str, Any]) -> list[Problem]:
    problems = []
    connector = config.get("connector")
    if not isinstance(connector, str) or not NAME_PATTERN.match(connector):
        problems.append(
            Problem("/config/connector", "must name a connector of flowhost.toml [connectors]")
        )
    if config.get("payload", "json") not in PAYLOAD_FORMATS:
        problems.append(Problem("/config/payload", f"must be one of {', '.join(PAYLOAD_FORMATS)}"))
    window = config.get("dedupe_window", DEFAULT_DEDUPE_WINDOW)
    if isinstance(window, bool) or not isinstance(window, int | float) or window < 0:
        problems.append(Problem("/config/dedupe_window", "must be a number of seconds >= 0"))
    if not isinstance(config.get("exclusive", False), bool):
        problems.append(Problem("/config/exclusive", "must be true or false"))
    return problems


def mqtt_problems(name: str, config: Mapping[str, Any]) -> list[Problem]:
    problems = _unknown(config, _MQTT_KEYS) + _common(config)
    topics = config.get("topics")
    if isinstance(topics, str):
        topics = [topics]
    if not isinstance(topics, list) or not topics:
        problems.append(Problem("/config/topics", "must be a topic filter or a list of them"))
    else:
        index = TriggerIndex(syntax="mqtt")
        for position, topic in enumerate(topics):
            pointer = f"/config/topics/{position}"
            if not isinstance(topic, str):
                problems.append(Problem(pointer, "must be a string"))
                continue
            try:
                index.add(topic, name)
            except PatternError as exc:
                problems.append(Problem(pointer, exc.message))
    qos = config.get("qos", 1)
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        problems.append(Problem("/config/qos", "must be 0, 1 or 2"))
    id_property = config.get("id_property")
    if id_property is not None and (not isinstance(id_property, str) or not id_property):
        problems.append(Problem("/config/id_property", "must be a user property's name"))
    return problems


def _amqp_name(config: Mapping[str, Any], key: str, *, required: bool) -> list[Problem]:
    value = config.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, str) or not value or len(value) > MAX_AMQP_NAME:
        return [Problem(f"/config/{key}", f"must be a name of 1 to {MAX_AMQP_NAME} characters")]
    if value.startswith("amq.") and key == "queue":
        return [Problem(f"/config/{key}", "queue names starting with amq. are the broker's")]
    return []


def _positive_int(config: Mapping[str, Any], key: str, default: int, top: int) -> list[Problem]:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        return [Problem(f"/config/{key}", f"must be an integer from 1 to {top}")]
    return []


def amqp_problems(name: str, config: Mapping[str, Any]) -> list[Problem]:
    problems = _unknown(config, _AMQP_KEYS) + _common(config)
    problems += _amqp_name(config, "queue", required=True)
    for key in ("exchange", "dead_letter_exchange", "dead_letter_routing_key"):
        problems += _amqp_name(config, key, required=False)
    problems += _positive_int(config, "prefetch", DEFAULT_PREFETCH, 65535)
    problems += _positive_int(config, "max_failures", DEFAULT_MAX_FAILURES, 1000)
    if not isinstance(config.get("declare", True), bool):
        problems.append(Problem("/config/declare", "must be true or false"))
    if config.get("queue_type", "classic") not in QUEUE_TYPES:
        problems.append(Problem("/config/queue_type", f"must be one of {', '.join(QUEUE_TYPES)}"))
    kind = config.get("exchange_type", "direct")
    if kind not in EXCHANGE_TYPES:
        problems.append(
            Problem("/config/exchange_type", f"must be one of {', '.join(EXCHANGE_TYPES)}")
        )
    keys = config.get("binding_keys", [])
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list) or not all(isinstance(k, str) and len(k) <= 255 for k in keys):
        problems.append(Problem("/config/binding_keys", "must be a list of binding keys"))
    elif keys and config.get("exchange") is None:
        problems.append(Problem("/config/binding_keys", "binding keys need an exchange"))
    return problems


def parse_mqtt(name: str, config: Mapping[str, Any]) -> MqttTrigger:
    """A checked config (see mqtt_problems) as an MqttTrigger."""
    topics = config["topics"]
    return MqttTrigger(
        name=name,
        connector=config["connector"],
        topics=(topics,) if isinstance(topics, str) else tuple(topics),
        qos=config.get("qos", 1),
        payload=config.get("payload", "json"),
        id_property=config.get("id_property"),
        dedupe_window=float(config.get("dedupe_window", DEFAULT_DEDUPE_WINDOW)),
        exclusive=config.get("exclusive", False),
    )


def parse_amqp(name: str, config: Mapping[str, Any]) -> AmqpTrigger:
    """A checked config (see amqp_problems) as an AmqpTrigger."""
    keys = config.get("binding_keys", [])
    return AmqpTrigger(
        name=name,
        connector=config["connector"],
        queue=config["queue"],
        declare=config.get("declare", True),
        queue_type=config.get("queue_type", "classic"),
        exchange=config.get("exchange"),
        exchange_type=config.get("exchange_type", "direct"),
        binding_keys=(keys,) if isinstance(keys, str) else tuple(keys),
        prefetch=config.get("prefetch", DEFAULT_PREFETCH),
        max_failures=config.get("max_failures", DEFAULT_MAX_FAILURES),
        dead_letter_exchange=config.get("dead_letter_exchange"),
        dead_letter_routing_key=config.get("dead_letter_routing_key"),
        payload=config.get("payload", "json"),
        dedupe_window=float(config.get("dedupe_window", DEFAULT_DEDUPE_WINDOW)),
        exclusive=config.get("exclusive", False),
    )


CHECKS: dict[str, Callable[[str, Mapping[str, Any]], list[Problem]]] = {
    "mqtt": mqtt_problems,
    "amqp": amqp_problems,
}
PARSERS: dict[str, Callable[[str, Mapping[str, Any]], BrokerTrigger]] = {
    "mqtt": parse_mqtt,
    "amqp": parse_amqp,
}
