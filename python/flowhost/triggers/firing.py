"""Firing a trigger: in the caller's transaction, a run in each subscribed flow and the fire's
record.

Every way a trigger fires calls `fire_trigger`: a webhook call, a schedule's tick, a CloudEvent,
an MQTT or AMQP message, an event published to flowhost or emitted by a step (event triggers),
the API's and the CLI's fire, a replay. Inside the caller's transaction it

1. reads the trigger and its subscriptions (one round trip); a missing trigger raises
   TriggerNotFoundError, a retired one TriggerRetiredError;
2. checks the payload against the trigger's `config.schema`, if it has one (TriggerInputError,
   with a JSON Pointer per problem);
3. with a `delivery_key`, takes the key; a key taken before returns that first fire's `Fired`
   (`duplicate=True`) and starts nothing;
4. starts a run in each flow subscribed in mode `auto` (or, with `flows`, in each of those,
   whatever their mode) through `flowhost.engine.starting.start_run`, the payload as input;
5. appends the `trigger.fired` event and counts the fire (one statement).

So the runs, the event and the count commit together or not at all. A subscribed flow no host
has registered yet is skipped (and listed as such in the event): a fire is not refused because
one of several subscribers is missing.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from flowhost.db.database import Connection
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.starting import StartOptions, start_run
from flowhost.errors import (
    InvalidInputError,
    TriggerInputError,
    TriggerNotFoundError,
    TriggerRetiredError,
)
from flowhost.store import triggers as store
from flowhost.store.json_data import as_json
from flowhost.triggers.declarations import payload_errors

# What `source` may say: a short word ("webhook", "schedule", "event", "api", "cli", ...).
SOURCE_PATTERN = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")
MAX_DELIVERY_KEY_LENGTH = 512
# Parsed definitions of flows this process does not serve, by hash (a hash names one content).
_STORED_DEFINITIONS_KEPT = 256
_stored_definitions: collections.OrderedDict[str, FlowDefinition] = collections.OrderedDict()

ServedFlows = Mapping[str, FlowDefinition] | Callable[[], Mapping[str, FlowDefinition]]


@dataclasses.dataclass(frozen=True, slots=True)
class FiredRun:
    flow: str
    run_id: uuid.UUID


@dataclasses.dataclass(frozen=True, slots=True)
class SkippedFlow:
    flow: str
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Fired:
    """What a fire did: the runs it started and the `trigger.fired` event that records it."""

    trigger: str
    fire_id: uuid.UUID
    event_id: int
    fired_at: datetime
    runs: tuple[FiredRun, ...]
    # Subscribed flows it could not start a run in, and why.
    skipped: tuple[SkippedFlow, ...] = ()
    # The delivery key was used before: this is that first fire; nothing was started now.
    duplicate: bool = False

    @property
    def run_ids(self) -> list[uuid.UUID]:
        return [run.run_id for run in self.runs]

    def to_json(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "fireId": str(self.fire_id),
            "eventId": self.event_id,
            "firedAt": self.fired_at.isoformat(),
            "runs": [{"flow": r.flow, "runId": str(r.run_id)} for r in self.runs],
            "skipped": [{"flow": s.flow, "reason": s.reason} for s in self.skipped],
            "duplicate": self.duplicate,
        }

    @classmethod
    def from_event(cls, trigger: str, event: store.TriggerEvent, *, duplicate: bool) -> Fired:
        data = event.data
        return cls(
            trigger=trigger,
            fire_id=uuid.UUID(data["fire_id"]),
            event_id=event.id,
            fired_at=event.ts,
            runs=tuple(FiredRun(r["flow"], uuid.UUID(r["run_id"])) for r in data["runs"]),
            skipped=tuple(SkippedFlow(s["flow"], s["reason"]) for s in data.get("skipped", ())),
            duplicate=duplicate,
        )


async def fire_trigger(
    conn: Connection,
    name: str,
    payload: Any,
    *,
    source: str,
    delivery_key: str | None = None,
    flows: Sequence[str] | None = None,
    served: ServedFlows | None = None,
    depth: int = 0,
    details: Mapping[str, Any] | None = None,
    replay_of: int | None = None,
    options: StartOptions | None = None,
) -> Fired:
    """Fire trigger `name` with `payload`; call inside a transaction (see the module's doc).

    Args:
        payload: JSON data: each run's input, and recorded in the `trigger.fired` event.
        source: what fired it, a short word: "webhook", "schedule", "cloudevents", "mqtt",
            "amqp", "event", "api", "cli", "replay".
        delivery_key: a webhook's delivery id, a message id: a second fire of this trigger
            with the same key returns the first one's answer (`duplicate=True`) and starts
            nothing, also when both arrive at once.
        flows: start runs only in these subscribed flows (manual-mode subscriptions included);
            None: every flow subscribed in mode auto.
        served: the flow definitions this process serves (a mapping or a function returning
            one); other flows start on the definition a host last registered.
        depth: how many event-trigger hops led here (0 from outside); recorded on each run.
        details: JSON facts about the fire worth keeping (a schedule's planned time, a
            webhook's method): recorded in the event. Never secrets.
        replay_of: the id of the `trigger.fired` event this fire replays.
        options: how the runs start (priority, delay, ...), as for any start.

    Raises:
        TriggerNotFoundError, TriggerRetiredError, TriggerInputError (the payload breaks the
        trigger's schema; `errors` lists where), InvalidInputError (a bad argument, or a named
        flow that is not subscribed).
    """
    _check_arguments(source, delivery_key, depth)
    data = as_json_input(payload)
    found = await store.trigger_for_fire(conn, name)
    if found is None:
        raise TriggerNotFoundError(f"no trigger {name!r}", trigger=name)
    if found["status"] == "retired":
        raise TriggerRetiredError(f"trigger {name!r} is retired: it does not fire", trigger=name)
    schema = found["config"].get("schema")
    if schema is not None:
        errors = payload_errors(schema, data)
        if errors:
            raise TriggerInputError(
                f"the input does not match the schema of trigger {name!r}: {errors[0]}",
                trigger=name,
                errors=[error.to_json() for error in errors],
            )
    targets = _targets(name, found["subscriptions"], flows)
    if delivery_key is not None and not await store.claim_delivery(conn, name, delivery_key):
        first = await store.fire_of_delivery(conn, name, delivery_key)
        assert first is not None, "a delivery key is taken together with its fire"
        return Fired.from_event(name, first, duplicate=True)
    fire_id = uuid.uuid4()
    origin = {
        "name": name,
        "type": found["type"],
        "fire_id": str(fire_id),
        "source": source,
        "depth": depth,
    }
    definitions = await _definitions(conn, targets, served)
    started: list[FiredRun] = []
    skipped: list[SkippedFlow] = []
    for flow_name, _hash in targets:
        definition = definitions[flow_name]
        if isinstance(definition, str):
            skipped.append(SkippedFlow(flow_name, definition))
            continue
        try:
            run = await start_run(conn, definition, data, options, started_data={"trigger": origin})
        except InvalidInputError as exc:  # refused before anything was written
            skipped.append(SkippedFlow(flow_name, exc.message))
            continue
        started.append(FiredRun(flow_name, run.run_id))
    event: dict[str, Any] = {
        "fire_id": str(fire_id),
        "source": source,
        "payload": data,
        "runs": [{"flow": r.flow, "run_id": str(r.run_id)} for r in started],
        "skipped": [{"flow": s.flow, "reason": s.reason} for s in skipped],
        "depth": depth,
    }
    if flows is not None:
        event["flows"] = list(flows)
    if delivery_key is not None:
        event["delivery_key"] = delivery_key
    if details:
        event["details"] = as_json(dict(details), "the fire's details")
    if replay_of is not None:
        event["replay_of"] = replay_of
    event_id, fired_at = await store.record_fire(
        conn, name, event, fire_id=fire_id, delivery_key=delivery_key
    )
    return Fired(name, fire_id, event_id, fired_at, tuple(started), tuple(skipped))


def as_json_input(payload: Any) -> Any:
    try:
        return as_json(payload, "the trigger's input")
    except TypeError as exc:
        raise InvalidInputError(str(exc)) from exc


def _check_arguments(source: str, delivery_key: str | None, depth: int) -> None:
    if not isinstance(source, str) or not SOURCE_PATTERN.match(source):
        raise InvalidInputError(f"source must be a short lowercase word (got {source!r})")
    if delivery_key is not None and (
        not isinstance(delivery_key, str)
        or not delivery_key
        or len(delivery_key) > MAX_DELIVERY_KEY_LENGTH
    ):
        raise InvalidInputError(
            f"delivery_key must be a non-empty string of at most {MAX_DELIVERY_KEY_LENGTH} "
            "characters"
        )
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise InvalidInputError(f"depth must be an integer >= 0 (got {depth!r})")


def _targets(
    name: str, subscriptions: Sequence[Mapping[str, Any]], flows: Sequence[str] | None
) -> list[tuple[str, str | None]]:
    """(flow, hash of its last registered definition) of each flow the fire starts a run in."""
    if flows is None:
        return [(s["flow"], s["hash"]) for s in subscriptions if s["mode"] == "auto"]
    by_flow = {s["flow"]: s["hash"] for s in subscriptions}
    missing = [flow for flow in flows if flow not in by_flow]
    if missing:
        known = ", ".join(sorted(by_flow)) or "none"
        raise InvalidInputError(
            f"flow {missing[0]!r} is not subscribed to trigger {name!r} (subscribed: {known})",
            trigger=name,
            flow=missing[0],
        )
    return [(flow, by_flow[flow]) for flow in dict.fromkeys(flows)]


async def _definitions(
    conn: Connection, targets: Sequence[tuple[str, str | None]], served: ServedFlows | None
) -> dict[str, FlowDefinition | str]:
    """Flow -> the definition to start it on, or why there is none."""
    here = (served() if callable(served) else served) or {}
    found: dict[str, FlowDefinition | str] = {}
    wanted: list[str] = []
    for flow, hash_ in targets:
        if flow in here:
            found[flow] = here[flow]
        elif hash_ is None:
            found[flow] = "no host has registered this flow yet"
        elif hash_ in _stored_definitions:
            _stored_definitions.move_to_end(hash_)
            found[flow] = _stored_definitions[hash_]
        else:
            wanted.append(flow)
    if wanted:
        for flow, row in (await store.stored_definitions(conn, wanted)).items():
            found[flow] = _parse_stored(row["definition"], row["definition_hash"])
    for flow in wanted:
        found.setdefault(flow, "no host has registered this flow yet")
    return found


def _parse_stored(definition: Mapping[str, Any], hash_: str) -> FlowDefinition | str:
    try:
        flow = FlowDefinition.from_json(definition)
    except ValueError:
        return "its registered definition is unreadable by this flowhost version"
    if flow.hash != hash_:
        return "its registered definition is unreadable by this flowhost version"
    _stored_definitions[hash_] = flow
    while len(_stored_definitions) > _STORED_DEFINITIONS_KEPT:
        _stored_definitions.popitem(last=False)
    return flow
