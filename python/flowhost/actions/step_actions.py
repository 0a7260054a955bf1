"""What a step's `ctx.publish.*` and `ctx.http` do on the host: the params of the protocol's
`publish.mqtt`, `publish.amqp` and `http.request` checked, the action done, and a `publish` or
`http` event handed to `record` whether the action worked or not (the run shows what was
tried). Bad params raise ValueError before anything is sent; a failed action raises
ActionError, which fails the attempt like any exception of the step.

At least once: an attempt that publishes and then fails is retried and publishes again. An
AMQP publish's default message id is the same on every attempt (the step's idempotency key and
the publish's place in the attempt), so a consumer deduplicating by message id takes it once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from flowhost import metrics
from flowhost.actions.http import HttpActions
from flowhost.connectors.publishers import Publishers
from flowhost.errors import BrokerError, BrokerSupportMissingError, ConfigurationError
from flowhost_worker.errors import ActionError

Record = Callable[[dict[str, Any]], None]
# A topic or routing key is at most this long (MQTT allows 65,535 bytes, AMQP 255).
MAX_TOPIC_LENGTH = 65_535
MAX_ROUTING_KEY_LENGTH = 255
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class Actor:
    """The step attempt (or await hook) acting: its placeholders and its identity."""

    run_id: str
    flow: str
    step: str
    attempt: int | None
    idempotency_key: str
    declared_env: frozenset[str]

    def placeholders(self) -> dict[str, str]:
        return {
            "run_id": self.run_id,
            "flow": self.flow,
            "step": self.step,
            "attempt": "" if self.attempt is None else str(self.attempt),
            "idempotency_key": self.idempotency_key,
        }


class StepActions:
    """The actions of one host's steps: its publishing connections and its HTTP client."""

    def __init__(self, publishers: Publishers | None, http: HttpActions) -> None:
        self._publishers = publishers
        self._http = http

    async def close(self) -> None:
        if self._publishers is not None:
            await self._publishers.close()
        await self._http.aclose()

    async def publish_mqtt(self, params: Mapping[str, Any], record: Record) -> dict[str, Any]:
        config = self._require_publishers().connector("mqtt", _optional_text(params, "connector"))
        topic = _text(params, "topic", MAX_TOPIC_LENGTH)
        if "+" in topic or "#" in topic or "\x00" in topic:
            raise ValueError("topic: a message's topic has no wildcards (+, #) and no NUL")
        payload = _payload(params, "payload")
        qos = params.get("qos", 1)
        if isinstance(qos, bool) or qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        retain = _flag(params, "retain", False)
        properties = params.get("properties") or {}
        if not isinstance(properties, dict):
            raise ValueError("properties must be a map")
        data: dict[str, Any] = {
            "kind": "mqtt",
            "connector": config.name,
            "topic": topic,
            "qos": qos,
            "retain": retain,
            "size": len(payload),
        }
        await self._publish(
            data,
            record,
            self._require_publishers().mqtt(
                config, topic, payload, qos=qos, retain=retain, properties=properties
            ),
        )
        return {k: data[k] for k in ("connector", "topic", "qos", "retain", "size")}

    async def publish_amqp(
        self, params: Mapping[str, Any], actor: Actor, sequence: int, record: Record
    ) -> dict[str, Any]:
        """`sequence`: this publish's place among the attempt's AMQP publishes (from 1)."""
        config = self._require_publishers().connector("amqp", _optional_text(params, "connector"))
        exchange = params.get("exchange", "")
        if not isinstance(exchange, str) or len(exchange) > MAX_ROUTING_KEY_LENGTH:
            raise ValueError("exchange must be a string of at most 255 characters")
        routing_key = params.get("routing_key", "")
        if not isinstance(routing_key, str) or len(routing_key) > MAX_ROUTING_KEY_LENGTH:
            raise ValueError("routing_key must be a string of at most 255 characters")
        body = _payload(params, "body")
        headers = params.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError("headers must be a map")
        message_id = _optional_text(params, "message_id") or (
            f"{actor.idempotency_key}:publish:{sequence}"
        )
        data: dict[str, Any] = {
            "kind": "amqp",
            "connector": config.name,
            "exchange": exchange,
            "routing_key": routing_key,
            "size": len(body),
            "message_id": message_id,
        }
        routed = await self._publish(
            data,
            record,
            self._require_publishers().amqp(
                config,
                exchange,
                routing_key,
                body,
                headers=headers,
                content_type=_optional_text(params, "content_type"),
                message_id=message_id,
                correlation_id=_optional_text(params, "correlation_id"),
                persistent=_flag(params, "persistent", True),
            ),
            lambda routed: "published" if routed else "unroutable",
        )
        return {
            **{k: data[k] for k in ("connector", "exchange", "routing_key", "size", "message_id")},
            "routed": bool(routed),
        }

    async def http_request(
        self, params: Mapping[str, Any], actor: Actor, record: Record
    ) -> dict[str, Any]:
        outcome = "error"
        try:
            answer = await self._http.request(
                params, actor.placeholders(), actor.declared_env, record
            )
            outcome = "ok"
            return answer
        finally:
            metrics.HTTP_ACTIONS.labels(outcome).inc()

    async def _publish(
        self,
        data: dict[str, Any],
        record: Record,
        publishing: Awaitable[Any],
        outcome_of: Callable[[Any], str] = lambda _: "published",
    ) -> Any:
        """Await `publishing`, then record `data` with the outcome, the error and the time."""
        began = time.perf_counter()
        data.update(outcome="failed", error="interrupted")  # until it ends one way or the other
        try:
            result = await publishing
        except (BrokerError, BrokerSupportMissingError, ConfigurationError) as exc:
            data.update(outcome="failed", error=exc.message)
            raise ActionError(
                f"publishing to connector {data['connector']}: {exc.message}"
            ) from None
        except ValueError as exc:
            data.update(outcome="refused", error=str(exc))
            raise
        else:
            data.update(outcome=outcome_of(result), error=None)
            return result
        finally:
            data["duration_ms"] = round((time.perf_counter() - began) * 1000, 3)
            record(data)

    def _require_publishers(self) -> Publishers:
        if self._publishers is None:
            raise ValueError("this host has no connectors ([connectors] in flowhost.toml)")
        return self._publishers


def _text(params: Mapping[str, Any], name: str, limit: int) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{name} must be a non-empty string of at most {limit} characters")
    return value


def _optional_text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _flag(params: Mapping[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _payload(params: Mapping[str, Any], name: str) -> bytes:
    value = params.get(name, b"")
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        raise ValueError(f"{name} must be bytes or a string")
    if len(value) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{name} is larger than {MAX_PAYLOAD_BYTES} bytes")
    return value
