"""Many fires of one trigger in a few statements: `fire_trigger` for a batch.

The webhook route commits the fires of concurrent requests together (group commit); firing
them one by one would cost five round trips each. `fire_batch` does what `fire_trigger` does
for each fire (same checks, same runs, same `trigger.fired` events, same answers, same delivery
keys), with one statement per step for the whole batch: the trigger read, the delivery keys
claimed, the runs started per subscribed flow (`start_runs` takes many), the events recorded.

A fire refused for its own reasons (its payload breaks the schema, a bad delivery key) is
answered with its error and does not stop the others; a key given twice in one batch starts
one fire, and the second gets the first's answer (`duplicate=True`), as when it comes later.
Call inside a transaction; nothing is written for refused fires.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.engine.orchestrator import start_runs
from flowhost.errors import (
    FlowhostError,
    InvalidInputError,
    TriggerInputError,
    TriggerNotFoundError,
    TriggerRetiredError,
)
from flowhost.store import triggers as store
from flowhost.store.json_data import as_json
from flowhost.triggers.declarations import payload_errors
from flowhost.triggers.firing import (
    Fired,
    FiredRun,
    ServedFlows,
    SkippedFlow,
    _check_arguments,
    _definitions,
    _targets,
    as_json_input,
)


@dataclasses.dataclass(frozen=True, slots=True)
class FireRequest:
    payload: Any
    delivery_key: str | None = None
    details: Mapping[str, Any] | None = None


Outcome = Fired | FlowhostError


async def fire_batch(
    conn: Connection,
    name: str,
    requests: Sequence[FireRequest],
    *,
    source: str,
    served: ServedFlows | None = None,
) -> list[Outcome]:
    """One outcome per request, in order: its `Fired`, or the error `fire_trigger` would
    have raised for it."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    data: list[Any] = [None] * len(requests)
    for i, request in enumerate(requests):
        try:
            _check_arguments(source, request.delivery_key, 0)
            data[i] = as_json_input(request.payload)
        except InvalidInputError as exc:
            outcomes[i] = exc
    found = await store.trigger_for_fire(conn, name)
    refusal: FlowhostError | None = None
    if found is None:
        refusal = TriggerNotFoundError(f"no trigger {name!r}", trigger=name)
    elif found["status"] == "retired":
        refusal = TriggerRetiredError(
            f"trigger {name!r} is retired: it does not fire", trigger=name
        )
    if refusal is not None or found is None:
        return [outcome or refusal for outcome in outcomes]  # type: ignore[misc]
    _check_schema(name, found["config"].get("schema"), data, outcomes)
    targets = _targets(name, found["subscriptions"], None)
    firing, repeats = await _claim_keys(conn, name, requests, outcomes)
    fire_ids = {i: uuid.uuid4() for i in firing}
    started: dict[int, list[FiredRun]] = {i: [] for i in firing}
    skipped: list[SkippedFlow] = []
    if firing:
        definitions = await _definitions(conn, targets, served)
        for flow_name, _hash in targets:
            definition = definitions[flow_name]
            if isinstance(definition, str):
                skipped.append(SkippedFlow(flow_name, definition))
                continue
            origin = {"name": name, "type": found["type"], "source": source, "depth": 0}
            try:
                run_ids = await start_runs(
                    conn,
                    definition,
                    [data[i] for i in firing],
                    own_started_data=[
                        {"trigger": {**origin, "fire_id": str(fire_ids[i])}} for i in firing
                    ],
                )
            except InvalidInputError as exc:  # refused before anything was written
                skipped.append(SkippedFlow(flow_name, exc.message))
                continue
            for i, run_id in zip(firing, run_ids, strict=True):
                started[i].append(FiredRun(flow_name, run_id))
        await _record(conn, name, source, requests, data, fire_ids, started, skipped, outcomes)
    for i, first in repeats.items():
        earlier = outcomes[first]
        outcomes[i] = (
            dataclasses.replace(earlier, duplicate=True) if isinstance(earlier, Fired) else earlier
        )
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


def _check_schema(name: str, schema: Any, data: list[Any], outcomes: list[Outcome | None]) -> None:
    if schema is None:
        return
    for i, payload in enumerate(data):
        if outcomes[i] is not None:
            continue
        errors = payload_errors(schema, payload)
        if errors:
            outcomes[i] = TriggerInputError(
                f"the input does not match the schema of trigger {name!r}: {errors[0]}",
                trigger=name,
                errors=[error.to_json() for error in errors],
            )


async def _claim_keys(
    conn: Connection,
    name: str,
    requests: Sequence[FireRequest],
    outcomes: list[Outcome | None],
) -> tuple[list[int], dict[int, int]]:
    """(the requests that fire now, {a repeat in this batch: the first with its key}); the
    outcomes of keys taken before are set to those first fires."""
    first_of_key: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for i, request in enumerate(requests):
        key = request.delivery_key
        if outcomes[i] is not None or key is None:
            continue
        if key in first_of_key:
            repeats[i] = first_of_key[key]
        else:
            first_of_key[key] = i
    if first_of_key:
        cursor = await conn.execute(
            QUERIES["claim_deliveries"], {"trigger": name, "keys": sorted(first_of_key)}
        )
        claimed = {row["key"] for row in await cursor.fetchall()}
        taken = [key for key in first_of_key if key not in claimed]
        if taken:
            cursor = await conn.execute(
                QUERIES["fires_of_deliveries"], {"trigger": name, "keys": taken}
            )
            for row in await cursor.fetchall():
                event = store.TriggerEvent(row["id"], store.TRIGGER_FIRED, row["ts"], row["data"])
                outcomes[first_of_key[row["key"]]] = Fired.from_event(name, event, duplicate=True)
            missing = [key for key in taken if outcomes[first_of_key[key]] is None]
            assert not missing, "a delivery key is taken together with its fire"
    firing = [i for i in range(len(requests)) if outcomes[i] is None and i not in repeats]
    return firing, repeats


async def _record(
    conn: Connection,
    name: str,
    source: str,
    requests: Sequence[FireRequest],
    data: list[Any],
    fire_ids: Mapping[int, uuid.UUID],
    started: Mapping[int, list[FiredRun]],
    skipped: list[SkippedFlow],
    outcomes: list[Outcome | None],
) -> None:
    events = []
    for i, fire_id in fire_ids.items():
        event: dict[str, Any] = {
            "fire_id": str(fire_id),
            "source": source,
            "payload": data[i],
            "runs": [{"flow": r.flow, "run_id": str(r.run_id)} for r in started[i]],
            "skipped": [{"flow": s.flow, "reason": s.reason} for s in skipped],
            "depth": 0,
        }
        request = requests[i]
        if request.delivery_key is not None:
            event["delivery_key"] = request.delivery_key
        if request.details:
            event["details"] = as_json(dict(request.details), "the fire's details")
        events.append({"data": event})
    slot = next(iter(fire_ids.values())).int % store.FIRE_SLOTS
    cursor = await conn.execute(
        QUERIES["record_fires"], {"trigger": name, "slot": slot, "fires": Jsonb(events)}
    )
    recorded = {row["fire_id"]: (row["id"], row["ts"]) for row in await cursor.fetchall()}
    for i, fire_id in fire_ids.items():
        event_id, fired_at = recorded[str(fire_id)]
        outcomes[i] = Fired(name, fire_id, event_id, fired_at, tuple(started[i]), tuple(skipped))
