"""Actions out of a step: `ctx.publish.mqtt`, `ctx.publish.amqp` and `ctx.http`.

The host does the work (it holds the broker connections and the secrets); this module checks
the arguments and turns them into the params of the protocol's `publish.mqtt`,
`publish.amqp` and `http.request` methods (docs/protocol.md). A payload is sent as bytes:
bytes as they are, a string as UTF-8, anything else as compact JSON.

Actions happen at least once with their step: an attempt that fails after publishing is
retried and publishes again (docs/connectors.md#actions-out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flowhost_worker.json_data import check_json

if TYPE_CHECKING:
    from flowhost_worker.context import ContextBackend

JSONValue = Any
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
AUTH_TYPES = ("basic", "bearer", "api_key")
DEFAULT_HTTP_TIMEOUT = 30.0
MAX_HTTP_TIMEOUT = 600.0
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
# A response travels back to a child in one protocol frame (8 MiB by default).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
# `json=` not given (None is JSON data).
NOTHING = object()


def encode_payload(payload: object) -> tuple[bytes, str]:
    """(bytes to send, their kind: "bytes", "text" or "json")."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload), "bytes"
    if isinstance(payload, str):
        return payload.encode("utf-8"), "text"
    check_json(payload, "the payload")
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8"), "json"


CONTENT_TYPES = {
    "json": "application/json",
    "text": "text/plain; charset=utf-8",
    "bytes": "application/octet-stream",
}


class Publisher:
    """`ctx.publish`: messages to the brokers of the project's connectors, through the host's
    connection to each (docs/connectors.md#actions-out)."""

    __slots__ = ("_backend",)

    def __init__(self, backend: ContextBackend) -> None:
        self._backend = backend

    async def mqtt(
        self,
        topic: str,
        payload: object = None,
        *,
        qos: int = 1,
        retain: bool = False,
        content_type: str | None = None,
        user_properties: Mapping[str, str] | None = None,
        connector: str | None = None,
    ) -> dict[str, JSONValue]:
        """Publish `payload` on `topic` and return once the broker has it (QoS 1: its PUBACK;
        QoS 2: PUBCOMP; QoS 0: once sent). `content_type` and `user_properties` are MQTT 5
        properties. `connector`: the `[connectors.NAME]` to use; may be left out when the
        project has one MQTT connector. Returns {connector, topic, qos, retain, size}."""
        require_text(topic, "topic")
        if isinstance(qos, bool) or qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2 (got {qos!r})")
        if not isinstance(retain, bool):
            raise TypeError(f"retain must be True or False (got {retain!r})")
        body, _ = encode_payload(payload)
        properties: dict[str, JSONValue] = {}
        if content_type is not None:
            require_text(content_type, "content_type")
            properties["content_type"] = content_type
        if user_properties is not None:
            properties["user_properties"] = [
                [k, v] for k, v in _string_map(user_properties, "user_properties").items()
            ]
        params = {
            "connector": _connector(connector),
            "topic": topic,
            "payload": body,
            "qos": qos,
            "retain": retain,
            "properties": properties,
        }
        return await self._backend.publish_mqtt(params)

    async def amqp(
        self,
        exchange: str,
        routing_key: str,
        body: object = None,
        *,
        headers: Mapping[str, JSONValue] | None = None,
        content_type: str | None = None,
        message_id: str | None = None,
        correlation_id: str | None = None,
        persistent: bool = True,
        connector: str | None = None,
    ) -> dict[str, JSONValue]:
        """Publish `body` to `exchange` ("" is the default exchange, which routes to the queue
        named `routing_key`) and return once the broker confirmed it (publisher confirms).

        `message_id` defaults to one built from the step's idempotency key and the publish's
        place in the attempt, the same when a retried attempt publishes again: a consumer
        that dedupes by message id (a flowhost AMQP trigger does) then takes it once.
        `persistent`: delivery mode 2 (kept across a broker restart by durable queues).
        Returns {connector, exchange, routing_key, size, message_id, routed}: `routed` is
        False when no queue took the message (the broker returned it)."""
        if not isinstance(exchange, str):
            raise TypeError(f"exchange must be a string (got {exchange!r})")
        if not isinstance(routing_key, str):
            raise TypeError(f"routing_key must be a string (got {routing_key!r})")
        if not isinstance(persistent, bool):
            raise TypeError(f"persistent must be True or False (got {persistent!r})")
        data, kind = encode_payload(body)
        if headers is not None:
            if not isinstance(headers, Mapping):
                raise TypeError("headers must be a mapping of names to JSON values")
            check_json(dict(headers), "the headers")
        params: dict[str, JSONValue] = {
            "connector": _connector(connector),
            "exchange": exchange,
            "routing_key": routing_key,
            "body": data,
            "headers": dict(headers or {}),
            "content_type": CONTENT_TYPES[kind] if content_type is None else content_type,
            "persistent": persistent,
        }
        for name, value in (("message_id", message_id), ("correlation_id", correlation_id)):
            if value is not None:
                require_text(value, name)
                params[name] = value
        if not isinstance(params["content_type"], str):
            raise TypeError("content_type must be a string")
        return await self._backend.publish_amqp(params)


def http_params(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None,
    query: Mapping[str, str] | None,
    body: object,
    json_body: object,
    auth: Mapping[str, str] | None,
    timeout: float,
    max_response_bytes: int,
) -> dict[str, JSONValue]:
    """The params of `http.request` (see `RunContext.http`)."""
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        raise ValueError(f"method must be one of {', '.join(HTTP_METHODS)} (got {method!r})")
    require_text(url, "url")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds (got {timeout!r})")
    if not math.isfinite(timeout) or not 0 < timeout <= MAX_HTTP_TIMEOUT:
        raise ValueError(f"timeout must be above 0 and at most {MAX_HTTP_TIMEOUT:g} seconds")
    if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int):
        raise TypeError("max_response_bytes must be an integer")
    if not 0 < max_response_bytes <= MAX_RESPONSE_BYTES:
        raise ValueError(f"max_response_bytes must be from 1 to {MAX_RESPONSE_BYTES}")
    sent_headers = _string_map(headers or {}, "headers")
    params: dict[str, JSONValue] = {
        "method": method.upper(),
        "url": url,
        "headers": sent_headers,
        "query": _string_map(query or {}, "query"),
        "body": None,
        "auth": None if auth is None else _string_map(auth, "auth"),
        "timeout": float(timeout),
        "max_response_bytes": max_response_bytes,
    }
    if json_body is not NOTHING:
        if body is not None:
            raise ValueError("give body or json, not both")
        # Sent as given: placeholders in JSON data are not expanded (data from outside
        # must never reach a secret).
        params["body"], _ = encode_payload(json_body)
        if not any(name.lower() == "content-type" for name in sent_headers):
            sent_headers["Content-Type"] = "application/json"
    elif body is not None:
        if not isinstance(body, str | bytes | bytearray | memoryview):
            raise TypeError("body must be a string (a template) or bytes; use json= for data")
        params["body"] = body if isinstance(body, str) else bytes(body)
    if params["auth"] is not None and params["auth"].get("type") not in AUTH_TYPES:
        raise ValueError(f"auth type must be one of {', '.join(AUTH_TYPES)}")
    return params


def _connector(connector: str | None) -> str | None:
    if connector is not None:
        require_text(connector, "connector")
    return connector


def _string_map(values: Mapping[str, str], what: str) -> dict[str, str]:
    if not isinstance(values, Mapping):
        raise TypeError(f"{what} must be a mapping of strings to strings")
    for key, value in values.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise TypeError(f"{what} must map non-empty strings to strings (got {key!r})")
    return dict(values)


def require_text(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string (got {value!r})")
