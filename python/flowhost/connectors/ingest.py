"""A broker message into runs: one transaction that fires each trigger the message is for, with
the message's delivery key, and records what could not fire. The broker adapter acknowledges
the message only after that transaction committed, as the verdict says.

- ACK: every trigger fired (or found the key taken: a redelivery), or an MQTT message could not
  fire (MQTT has no negative acknowledgement: the rejection is recorded, the message acked).
- REQUEUE: an AMQP message failed to fire and has failed fewer than `max_failures` times
  (counted in Postgres per trigger and message, so that every host sees the same count).
- REJECT: an AMQP message failed `max_failures` times: rejected without requeue, which sends it
  to the queue's dead-letter exchange if it has one. The reason is in the trigger's stream
  (`trigger.rejected`).

The database being unreachable is not a failure of the message: it raises
(DatabaseUnavailableError), nothing is acknowledged, and the broker delivers it again.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from flowhost.connectors.messages import AmqpMessage, BrokerMessage, PayloadError, preview
from flowhost.connectors.trigger_config import AmqpTrigger, BrokerTrigger, MqttTrigger
from flowhost.db.database import Connection, Database
from flowhost.engine.definitions import FlowDefinition
from flowhost.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    FlowhostError,
    TriggerNotFoundError,
    TriggerRetiredError,
)
from flowhost.store import connectors as store
from flowhost.store.json_data import storable_text
from flowhost.store.triggers import TRIGGER_REJECTED, NewTriggerEvent, append_trigger_events
from flowhost.triggers.batch_firing import FireRequest, fire_batch
from flowhost.triggers.firing import Fired, fire_trigger

logger = logging.getLogger(__name__)


class Verdict(enum.Enum):
    ACK = "ack"
    REQUEUE = "requeue"
    REJECT = "reject"


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    trigger: str
    error: dict[str, Any]
    attempts: int
    dead_lettered: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Ingested:
    verdict: Verdict
    fired: tuple[Fired, ...] = ()
    # Triggers whose fire failed this time (with REQUEUE: to be tried again).
    failed: tuple[str, ...] = ()
    rejected: tuple[Rejection, ...] = ()


class _FireFailed(Exception):
    def __init__(self, trigger: str, error: BaseException) -> None:
        super().__init__(trigger)
        self.trigger = trigger
        self.error = error


def error_json(exc: BaseException) -> dict[str, Any]:
    message = exc.message if isinstance(exc, FlowhostError) else str(exc)
    found: dict[str, Any] = {"type": type(exc).__name__, "message": storable_text(message)}
    if isinstance(exc, FlowhostError) and "errors" in exc.details:
        found["errors"] = exc.details["errors"]
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """A message to fire, with its triggers (and for AMQP its queue's max_failures)."""

    message: BrokerMessage
    triggers: tuple[BrokerTrigger, ...]
    max_failures: int | None = None


class Ingest:
    """Fires broker messages into runs for one connector."""

    def __init__(
        self,
        database: Database,
        connector: str,
        *,
        served: Callable[[], Mapping[str, FlowDefinition]] | None = None,
    ) -> None:
        self._database = database
        self._connector = connector
        self._served = served

    async def message(
        self,
        message: BrokerMessage,
        triggers: Sequence[BrokerTrigger],
        *,
        max_failures: int | None = None,
    ) -> Ingested:
        """Fire `triggers` with `message`; `max_failures` None: MQTT (reject at once, ack)."""
        source = "amqp" if isinstance(message, AmqpMessage) else "mqtt"
        inputs: dict[str, Any] = {}
        failures: dict[str, dict[str, Any]] = {}
        by_name = {t.name: t for t in triggers}
        for trigger in triggers:
            try:
                inputs[trigger.name] = _run_input(message, trigger, self._connector)
            except PayloadError as exc:
                failures[trigger.name] = {"type": "PayloadError", "message": str(exc)}
        while True:
            try:
                async with self._database.transaction() as conn:
                    fired = []
                    for name, data in inputs.items():
                        found = await self._fire(conn, by_name[name], message, data, source)
                        if found is not None:
                            fired.append(found)
                    verdict, rejected = await self._record_failures(
                        conn, message, failures, max_failures, source
                    )
                    if isinstance(message, AmqpMessage) and message.redelivered and not failures:
                        # Earlier failures of this message are over.
                        await store.clear_failures(conn, list(inputs), message.failure_key())
                return Ingested(verdict, tuple(fired), tuple(failures), rejected)
            except _FireFailed as failed:
                # That fire is rolled back with everything else of the transaction; the others
                # go again without it, and its failure is recorded.
                inputs.pop(failed.trigger)
                failures[failed.trigger] = error_json(failed.error)

    async def batch(self, items: Sequence[Item]) -> list[Ingested]:
        """Fire many messages in one transaction (one commit for all: what makes a busy
        connector fast). A message that fails (or whose payload cannot be read) makes this fall
        back to one transaction per message, where its failure is recorded alone."""
        readable: list[tuple[int, Item, dict[str, Any]]] = []
        results: list[Ingested | None] = [None] * len(items)
        for position, item in enumerate(items):
            try:
                inputs = {
                    t.name: _run_input(item.message, t, self._connector) for t in item.triggers
                }
            except PayloadError:
                continue  # fired alone below, where the failure is recorded
            readable.append((position, item, inputs))
        try:
            async with self._database.transaction() as conn:
                fired = await self._fire_batches(conn, readable)
                for position, item, inputs in readable:
                    message = item.message
                    if isinstance(message, AmqpMessage) and message.redelivered:
                        await store.clear_failures(conn, list(inputs), message.failure_key())
                    results[position] = Ingested(Verdict.ACK, tuple(fired.get(position, ())))
        except _FireFailed:
            results = [None] * len(items)
        for position, item in enumerate(items):
            if results[position] is None:
                results[position] = await self.message(
                    item.message, item.triggers, max_failures=item.max_failures
                )
        return [result for result in results if result is not None]

    async def _fire_batches(
        self, conn: Connection, readable: Sequence[tuple[int, Item, dict[str, Any]]]
    ) -> dict[int, list[Fired]]:
        """A `fire_batch` per trigger (a few statements for all its messages); raises
        _FireFailed when one message's fire was refused (the caller falls back)."""
        by_trigger: dict[str, list[tuple[int, BrokerMessage, BrokerTrigger, Any]]] = {}
        for position, item, inputs in readable:
            for trigger in item.triggers:
                entry = (position, item.message, trigger, inputs[trigger.name])
                by_trigger.setdefault(trigger.name, []).append(entry)
        fired: dict[int, list[Fired]] = {}
        for name, entries in by_trigger.items():
            keys = [_delivery_key(message, trigger) for _, message, trigger, _ in entries]
            requests = [
                FireRequest(
                    data,
                    None if key is None else key.key,
                    {"connector": self._connector, **message.details()},
                )
                for (_, message, _, data), key in zip(entries, keys, strict=True)
            ]
            source = "amqp" if isinstance(entries[0][1], AmqpMessage) else "mqtt"
            try:
                outcomes = await fire_batch(
                    conn, name, requests, source=source, served=self._served
                )
            except (psycopg.OperationalError, DatabaseError, DatabaseUnavailableError):
                raise
            except (FlowhostError, psycopg.Error) as exc:
                raise _FireFailed(name, exc) from exc
            for (position, message, trigger, data), key, outcome in zip(
                entries, keys, outcomes, strict=True
            ):
                if isinstance(outcome, TriggerNotFoundError | TriggerRetiredError):
                    continue  # the registry moved on: nothing to start
                if isinstance(outcome, FlowhostError):
                    raise _FireFailed(name, outcome)
                if outcome.duplicate and key is not None and key.window is not None:
                    # Rare (an identical message past the window): fired on its own.
                    refired = await self._fire(conn, trigger, message, data, source)
                    outcome = refired or outcome
                fired.setdefault(position, []).append(outcome)
        return fired

    async def _fire(
        self,
        conn: Connection,
        trigger: BrokerTrigger,
        message: BrokerMessage,
        data: Any,
        source: str,
    ) -> Fired | None:
        key = _delivery_key(message, trigger)
        details = {"connector": self._connector, **message.details()}
        try:
            fired = await fire_trigger(
                conn,
                trigger.name,
                data,
                source=source,
                delivery_key=None if key is None else key.key,
                served=self._served,
                details=details,
            )
            # An identical message after the dedupe window is a new delivery.
            if (
                fired.duplicate
                and key is not None
                and key.window is not None
                and await store.expire_delivery_key(conn, trigger.name, key.key, key.window)
            ):
                fired = await fire_trigger(
                    conn,
                    trigger.name,
                    data,
                    source=source,
                    delivery_key=key.key,
                    served=self._served,
                    details=details,
                )
        except (TriggerNotFoundError, TriggerRetiredError):
            # The registry moved on (the connector's triggers are reloaded): nothing to start.
            return None
        except (psycopg.OperationalError, DatabaseError, DatabaseUnavailableError):
            raise  # not the message's fault: nothing is acknowledged
        except (FlowhostError, psycopg.Error) as exc:
            raise _FireFailed(trigger.name, exc) from exc
        return fired

    async def _record_failures(
        self,
        conn: Connection,
        message: BrokerMessage,
        failures: Mapping[str, dict[str, Any]],
        max_failures: int | None,
        source: str,
    ) -> tuple[Verdict, tuple[Rejection, ...]]:
        if not failures:
            return Verdict.ACK, ()
        counts = {}
        if max_failures is not None:
            key = message.failure_key()
            for name, error in failures.items():
                counts[name] = await store.count_failure(conn, name, key, error["message"])
            if max(counts.values()) < max_failures:
                for name, error in failures.items():
                    logger.warning(
                        "connector %s: trigger %s did not fire (attempt %d of %d): %s",
                        self._connector,
                        name,
                        counts[name],
                        max_failures,
                        error["message"],
                    )
                return Verdict.REQUEUE, ()
            await store.clear_failures(conn, list(failures), key)
        dead_lettered = max_failures is not None
        rejected = tuple(
            Rejection(name, error, counts.get(name, 1), dead_lettered)
            for name, error in failures.items()
        )
        events = []
        for rejection in rejected:
            data = {
                "source": source,
                "connector": self._connector,
                "reason": rejection.error["message"],
                "error": rejection.error,
                "attempts": rejection.attempts,
                "dead_lettered": rejection.dead_lettered,
                "delivery_key": message.failure_key(),
                "message": message.details(),
                "payload_preview": storable_text(preview(message.body)),
            }
            events.append(NewTriggerEvent(rejection.trigger, TRIGGER_REJECTED, data))
            logger.warning(
                "connector %s: trigger %s rejected a message%s: %s",
                self._connector,
                rejection.trigger,
                " (dead-lettered)" if dead_lettered else "",
                rejection.error["message"],
            )
        await append_trigger_events(conn, events)
        return (Verdict.REJECT if dead_lettered else Verdict.ACK), rejected


def _run_input(message: BrokerMessage, trigger: BrokerTrigger, connector: str) -> Any:
    if isinstance(message, AmqpMessage):
        assert isinstance(trigger, AmqpTrigger)
        return message.run_input(trigger, connector)
    assert isinstance(trigger, MqttTrigger)
    return message.run_input(trigger, connector)


def _delivery_key(message: BrokerMessage, trigger: BrokerTrigger) -> Any:
    if isinstance(message, AmqpMessage):
        assert isinstance(trigger, AmqpTrigger)
        return message.delivery_key(trigger)
    assert isinstance(trigger, MqttTrigger)
    return message.delivery_key(trigger)
