"""Event triggers: events emitted by steps or published from outside fire the triggers whose
names or patterns match them, in the transaction that records the event.

Each host keeps the active event triggers in memory, in a Rust `TriggerIndex` (pattern →
trigger name), so that the transaction that completes a step pays nothing for an emit no
trigger matches: no query, no round trip. Only a name that matches costs SQL: the emitting
runs' depths (one query), then a `fire_trigger` per matching trigger, each in a savepoint so
that a fire that fails (a payload that breaks the trigger's schema, say) is recorded and does
not fail the step that emitted.

Freshness. A change of an event trigger (registered, its config or status changed, retired)
bumps the registry's generation and is announced at commit (NOTIFY flowhost_triggers). A host
reloads its index when told, and also compares the generation every `trigger_check_interval`
seconds (2 by default), which catches a notification missed while it reconnected. So an emit
sees a new or changed trigger a few milliseconds after the change commits on the host that
emits, and at worst `trigger_check_interval` seconds later. In that window an emit may miss a
trigger that was just registered, or reach one that was just retired (whose fire is then
refused by the registry, and so skipped).

Chains. A run started by an event trigger carries its depth (`flow.started`'s
`trigger.depth`): 1 from a published event, one more than the emitting run's for an emit.
An emit that would start runs deeper than `max_depth` fires nothing: the emitting run gets a
`trigger.chain_stopped` event, and so does the trigger's stream. That ends loops such as a
flow whose step emits the event that starts the flow.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from flowhost._core import TriggerIndex
from flowhost.db.database import Connection, Database
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.orchestrator import Emitted
from flowhost.errors import EventNameError, FlowhostError, TriggerNotFoundError, TriggerRetiredError
from flowhost.store import triggers as store
from flowhost.store.events import NewEvent, append_events
from flowhost.store.json_data import storable_text
from flowhost.store.triggers import NewTriggerEvent
from flowhost.triggers.declarations import event_patterns
from flowhost.triggers.firing import Fired, fire_trigger

logger = logging.getLogger(__name__)

CHANNEL = "flowhost_triggers"
DEFAULT_MAX_DEPTH = 10
# Events of a run's stream (and a trigger's) about event triggers.
CHAIN_STOPPED = store.TRIGGER_CHAIN_STOPPED
FIRE_FAILED = store.TRIGGER_FIRE_FAILED
# What fired the trigger, in its trigger.fired event.
SOURCE_EMIT = "emit"
SOURCE_PUBLISHED = "event"


@dataclasses.dataclass(frozen=True, slots=True)
class FireFailure:
    """A matching trigger that did not fire, and why."""

    trigger: str
    event: str
    error: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class EventFires:
    fired: tuple[Fired, ...] = ()
    failed: tuple[FireFailure, ...] = ()
    # (trigger, event) pairs a chain too deep stopped.
    stopped: tuple[tuple[str, str], ...] = ()


class EventTriggers:
    """One host's index of the active event triggers, and the firing of those that match.

    `served` gives the flow definitions the host serves (runs of other flows start on the
    definition a host last registered)."""

    def __init__(
        self,
        served: Callable[[], Mapping[str, FlowDefinition]] | None = None,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self._served = served or dict
        self.max_depth = max_depth
        self._index = TriggerIndex()
        # The registry generation the index was built from; None until the first load.
        self._generation: int | None = None
        self._wake = asyncio.Event()

    @property
    def generation(self) -> int | None:
        return self._generation

    def matching(self, name: str) -> list[str]:
        """The event triggers whose patterns match `name` (in memory)."""
        try:
            return [str(trigger) for trigger in self._index.match(name)]
        except EventNameError:  # an empty segment ("a..b"): no pattern can match it
            return []

    # -- keeping the index current --------------------------------------------------------

    async def load(self, conn: Connection) -> None:
        """Build the index from the registry (one query); the old one serves until then."""
        generation, triggers = await store.event_triggers_snapshot(conn)
        index = TriggerIndex()
        for trigger in triggers:
            for pattern in event_patterns(trigger["name"], trigger["config"]):
                try:
                    index.add(pattern, trigger["name"])
                except ValueError:
                    logger.warning("event trigger %s has an invalid pattern %r", trigger, pattern)
        self._index, self._generation = index, generation

    async def ensure_loaded(self, conn: Connection) -> None:
        if self._generation is None:
            await self.load(conn)

    def notified(self, payload: str) -> None:
        """A NOTIFY on CHANNEL (payload: the registry's new generation)."""
        try:
            generation = int(payload)
        except ValueError:
            generation = None
        if generation is None or generation != self._generation:
            self._wake.set()

    async def watch(self, database: Database, interval: float, stop: asyncio.Event) -> None:
        """Reload on notification, and whenever the generation moved (checked every `interval`
        seconds), until `stop` is set. Starts with a load: notifications sent while the host was
        not listening are lost."""
        reload = True
        while not stop.is_set():
            if not reload:
                await _either(self._wake, stop, interval)
                reload = self._wake.is_set()
            self._wake.clear()
            if stop.is_set():
                return
            try:
                async with database.connection() as conn:
                    if reload or await store.registry_generation(conn) != self._generation:
                        await self.load(conn)
                reload = False
            except FlowhostError as exc:
                logger.warning("could not refresh the event triggers: %s", exc)
                reload = True
                await _either(stop, stop, min(interval, 1.0))

    # -- firing ---------------------------------------------------------------------------

    async def emitted(self, conn: Connection, emits: Sequence[Emitted]) -> None:
        """Emits that counted, in the transaction recording them: fire the matching triggers.
        Without a match this returns at once, without touching `conn`."""
        matches = [(emit, name) for emit in emits for name in self.matching(emit.name)]
        if not matches:
            return
        depths = await store.trigger_depths(conn, sorted({emit.run_id for emit, _ in matches}))
        stopped: list[tuple[Emitted, str, int]] = []
        failed: list[tuple[Emitted, FireFailure]] = []
        for emit, trigger in matches:
            depth = depths.get(emit.run_id, 0) + 1
            if depth > self.max_depth:
                stopped.append((emit, trigger, depth))
                continue
            details = {"event": emit.name, "run_id": str(emit.run_id), "step": emit.step}
            outcome = await self._fire(
                conn, trigger, emit.name, emit.payload, SOURCE_EMIT, depth, details
            )
            if isinstance(outcome, FireFailure):
                failed.append((emit, outcome))
        await self._record_misses(conn, stopped, failed)

    async def published(
        self, conn: Connection, name: str, payload: Any, *, details: Mapping[str, Any] | None = None
    ) -> EventFires:
        """An event published from outside (no run emitted it): fire the matching triggers;
        the runs they start are at depth 1."""
        await self.ensure_loaded(conn)
        fired: list[Fired] = []
        failed: list[FireFailure] = []
        for trigger in self.matching(name):
            outcome = await self._fire(
                conn,
                trigger,
                name,
                payload,
                SOURCE_PUBLISHED,
                1,
                {"event": name, **(details or {})},
            )
            if isinstance(outcome, FireFailure):
                failed.append(outcome)
                await store.append_trigger_events(
                    conn, [NewTriggerEvent(trigger, FIRE_FAILED, _failure_data(outcome, None))]
                )
            elif outcome is not None:
                fired.append(outcome)
        return EventFires(fired=tuple(fired), failed=tuple(failed))

    async def _fire(
        self,
        conn: Connection,
        trigger: str,
        event: str,
        payload: Any,
        source: str,
        depth: int,
        details: Mapping[str, Any],
    ) -> Fired | FireFailure | None:
        """One fire in a savepoint: a fire that fails leaves the caller's transaction as it
        was. None: the trigger is gone or retired (the index was behind the registry)."""
        try:
            async with conn.transaction():
                return await fire_trigger(
                    conn,
                    trigger,
                    payload,
                    source=source,
                    served=self._served,
                    depth=depth,
                    details=details,
                )
        except (TriggerNotFoundError, TriggerRetiredError):
            self._wake.set()  # the index is behind: reload it
            return None
        except psycopg.OperationalError:
            raise  # the connection is gone: the caller's transaction is lost anyway
        except (FlowhostError, psycopg.Error) as exc:
            message = exc.message if isinstance(exc, FlowhostError) else str(exc)
            error: dict[str, Any] = {"type": type(exc).__name__, "message": storable_text(message)}
            if isinstance(exc, FlowhostError) and "errors" in exc.details:
                error["errors"] = exc.details["errors"]
            logger.warning("event %s did not fire trigger %s: %s", event, trigger, message)
            return FireFailure(trigger, event, error)

    async def _record_misses(
        self,
        conn: Connection,
        stopped: Sequence[tuple[Emitted, str, int]],
        failed: Sequence[tuple[Emitted, FireFailure]],
    ) -> None:
        run_events: list[NewEvent] = []
        trigger_events: list[NewTriggerEvent] = []
        for emit, trigger, depth in stopped:
            data = {
                "trigger": trigger,
                "event": emit.name,
                "depth": depth,
                "max_depth": self.max_depth,
                "message": f"event {emit.name!r} would start runs {depth} event-trigger hops "
                f"deep; the limit is {self.max_depth}: trigger {trigger!r} did not fire",
            }
            logger.warning("run %s: %s", emit.run_id, data["message"])
            run_events.append(NewEvent(emit.run_id, CHAIN_STOPPED, data, emit.step))
            trigger_events.append(
                NewTriggerEvent(trigger, CHAIN_STOPPED, {**data, "run_id": str(emit.run_id)})
            )
        for emit, failure in failed:
            data = _failure_data(failure, emit.run_id)
            run_events.append(NewEvent(emit.run_id, FIRE_FAILED, data, emit.step))
            trigger_events.append(NewTriggerEvent(failure.trigger, FIRE_FAILED, data))
        await append_events(conn, run_events)
        await store.append_trigger_events(conn, trigger_events)


async def _either(first: asyncio.Event, second: asyncio.Event, timeout: float) -> None:
    """Wait until one of the events is set, or `timeout` seconds pass."""
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def _failure_data(failure: FireFailure, run_id: uuid.UUID | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "trigger": failure.trigger,
        "event": failure.event,
        "error": failure.error,
    }
    if run_id is not None:
        data["run_id"] = str(run_id)
    return data
