"""The triggers API: what the HTTP routes, the dashboard and the CLI call.

Each function runs on a connection the caller owns; those that change something expect to run
inside the caller's transaction (one transaction per request). Errors map to HTTP statuses:

| error | status |
|---|---|
| TriggerNotFoundError, SubscriptionNotFoundError | 404 |
| TriggerConflictError (name taken, version mismatch, a config-made subscription) | 409 |
| TriggerRetiredError (fire, replay or subscribe a retired trigger) | 409 |
| TriggerConfigError, TriggerInputError (`errors`: [{pointer, message}]) | 422 |
| InvalidInputError (another bad argument) | 422 |

`HTTP_STATUS` holds the same table for the routes. Firing is `fire_trigger`
(flowhost.triggers.firing), replaying `replay_trigger` (flowhost.triggers.replay); both are
re-exported here. Triggers made here have `source: "api"`;
those declared in function configs (`source: "config"`) can be edited here too, but the next
host start applies the configs again.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final

from flowhost.db.database import Connection
from flowhost.errors import (
    FlowhostError,
    InvalidInputError,
    SubscriptionNotFoundError,
    TriggerConfigError,
    TriggerConflictError,
    TriggerInputError,
    TriggerNotFoundError,
    TriggerRetiredError,
)
from flowhost.store import triggers as store
from flowhost.store.triggers import SubscriptionRow, TriggerEvent, TriggerView
from flowhost.triggers import registry
from flowhost.triggers.declarations import MODES, TriggerSpec, name_problem
from flowhost.triggers.firing import Fired, fire_trigger
from flowhost.triggers.replay import Replayed, replay_trigger

HTTP_STATUS: Final[Mapping[type[FlowhostError], int]] = {
    TriggerNotFoundError: 404,
    SubscriptionNotFoundError: 404,
    TriggerConflictError: 409,
    TriggerRetiredError: 409,
    TriggerConfigError: 422,
    TriggerInputError: 422,
    InvalidInputError: 422,
}
MAX_LIST = 1000
# Statuses an update may set; retiring is `retire_trigger` (it records final figures).
UPDATABLE_STATUSES = ("active", "deprecated")


class _Unchanged(enum.Enum):
    UNCHANGED = "unchanged"


UNCHANGED: Final = _Unchanged.UNCHANGED


async def list_triggers(
    conn: Connection,
    *,
    type: str | None = None,
    status: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[TriggerView]:
    """Triggers by name, after the name `after` (paging), with subscriptions and figures."""
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInputError(f"limit must be from 1 to {MAX_LIST} (got {limit})")
    return await store.list_triggers(conn, type=type, status=status, after=after, limit=limit)


async def get_trigger(conn: Connection, name: str) -> TriggerView:
    found = await store.list_triggers(conn, name=name, limit=1)
    if not found:
        raise TriggerNotFoundError(f"no trigger {name!r}", trigger=name)
    return found[0]


async def trigger_events(
    conn: Connection,
    name: str,
    *,
    after: int = 0,
    limit: int = 100,
    types: Sequence[str] | None = None,
) -> list[TriggerEvent]:
    """The trigger's stream after event id `after`, oldest first."""
    await get_trigger(conn, name)
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInputError(f"limit must be from 1 to {MAX_LIST} (got {limit})")
    unknown = [t for t in types or () if t not in store.EVENT_TYPES]
    if unknown:
        known = ", ".join(store.EVENT_TYPES)
        raise InvalidInputError(f"unknown event type {unknown[0]!r} (known: {known})")
    return await store.trigger_events(conn, name, after=after, limit=limit, types=types)


def check_spec(spec: TriggerSpec) -> None:
    problems = spec.problems()
    if problems:
        raise TriggerConfigError(
            f"trigger {spec.name!r} is invalid: {problems[0]}",
            trigger=spec.name,
            errors=[problem.to_json() for problem in problems],
        )


async def create_trigger(
    conn: Connection, spec: TriggerSpec, *, subscribe: Mapping[str, str] | None = None
) -> TriggerView:
    """Register a trigger (source "api"), with subscriptions flow -> mode. A name already
    registered (whatever its status) is a TriggerConflictError: update or reactivate it."""
    check_spec(spec)
    subscriptions = _check_subscriptions(spec.name, subscribe or {})
    if not await registry.register(conn, registry.new_row(spec, source="api")):
        raise TriggerConflictError(f"trigger {spec.name!r} exists already", trigger=spec.name)
    for flow, mode in subscriptions.items():
        await registry.subscribe(conn, SubscriptionRow(spec.name, flow, mode, "api"), None)
    return await get_trigger(conn, spec.name)


async def update_trigger(
    conn: Connection,
    name: str,
    *,
    version: int,
    type: str | _Unchanged = UNCHANGED,
    config: Mapping[str, Any] | _Unchanged = UNCHANGED,
    display_name: str | _Unchanged | None = UNCHANGED,
    description: str | _Unchanged | None = UNCHANGED,
    status: str | _Unchanged = UNCHANGED,
) -> TriggerView:
    """Change a trigger if its version is still `version` (else TriggerConflictError, with
    the current version). `status` may be "active" (which also brings a retired trigger back)
    or "deprecated"."""
    current = await _locked(conn, name)
    if current.version != version:
        raise TriggerConflictError(
            f"trigger {name!r} is at version {current.version}, not {version}: it changed "
            "meanwhile; read it again",
            trigger=name,
            version=current.version,
        )
    spec = TriggerSpec(
        name=name,
        type=current.type if type is UNCHANGED else type,
        config=current.config if config is UNCHANGED else config,
        display_name=current.display_name if display_name is UNCHANGED else display_name,
        description=current.description if description is UNCHANGED else description,
    )
    check_spec(spec)
    if status is not UNCHANGED and status not in UPDATABLE_STATUSES:
        raise TriggerConfigError(
            f"status must be {' or '.join(UPDATABLE_STATUSES)} (retire a trigger to retire it)",
            trigger=name,
            errors=[{"pointer": "/status", "message": "must be active or deprecated"}],
        )
    wanted = dataclasses.replace(
        registry.new_row(spec, source=current.source, declared_at=current.declared_at),
        status=current.status if status is UNCHANGED else status,
        version=current.version,
    )
    await registry.update(conn, current, wanted)
    return await get_trigger(conn, name)


async def retire_trigger(
    conn: Connection, name: str, *, reason: str | None = None, version: int | None = None
) -> TriggerView:
    """Retire a trigger: it fires no more (fire, replay and new subscriptions are refused).
    Retiring a retired trigger changes nothing. With `version`, only if it is still that."""
    current = await _locked(conn, name)
    if version is not None and current.version != version:
        raise TriggerConflictError(
            f"trigger {name!r} is at version {current.version}, not {version}",
            trigger=name,
            version=current.version,
        )
    await registry.retire(conn, current, reason or "retired through the API")
    return await get_trigger(conn, name)


async def subscribe(conn: Connection, name: str, flow: str, *, mode: str = "auto") -> TriggerView:
    """Subscribe `flow` (source "api"), or change the mode of its API subscription. A
    subscription a function's config made is the config's to change (TriggerConflictError)."""
    mode = _check_subscriptions(name, {flow: mode})[flow]
    current = await _locked(conn, name)
    if current.status == "retired":
        raise TriggerRetiredError(f"trigger {name!r} is retired", trigger=name)
    previous = {s.flow: s for s in await store.subscriptions_of(conn, name)}.get(flow)
    if previous is not None and previous.source == "config":
        raise TriggerConflictError(
            f"flow {flow!r} subscribes to trigger {name!r} in its function config; change it there",
            trigger=name,
            flow=flow,
        )
    await registry.subscribe(conn, SubscriptionRow(name, flow, mode, "api"), previous)
    return await get_trigger(conn, name)


async def unsubscribe(conn: Connection, name: str, flow: str) -> TriggerView:
    """Remove the API subscription of `flow`."""
    await _locked(conn, name)
    previous = {s.flow: s for s in await store.subscriptions_of(conn, name)}.get(flow)
    if previous is None:
        raise SubscriptionNotFoundError(
            f"flow {flow!r} is not subscribed to trigger {name!r}", trigger=name, flow=flow
        )
    if previous.source == "config":
        raise TriggerConflictError(
            f"flow {flow!r} subscribes to trigger {name!r} in its function config; remove it there",
            trigger=name,
            flow=flow,
        )
    await registry.unsubscribe(conn, previous, "unsubscribed through the API")
    return await get_trigger(conn, name)


async def _locked(conn: Connection, name: str) -> store.TriggerRow:
    current = await store.trigger_for_update(conn, name)
    if current is None:
        raise TriggerNotFoundError(f"no trigger {name!r}", trigger=name)
    return current


def _check_subscriptions(name: str, subscribe: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for position, (flow, mode) in enumerate(subscribe.items()):
        problem = name_problem(flow, "flow")
        if problem is None and mode not in MODES:
            problem = f"mode must be auto or manual (got {mode!r})"
        if problem is not None:
            raise TriggerConfigError(
                f"subscription of trigger {name!r}: {problem}",
                trigger=name,
                errors=[{"pointer": f"/subscribe/{position}", "message": problem}],
            )
        found[flow] = mode
    return found


__all__ = [
    "HTTP_STATUS",
    "UNCHANGED",
    "Fired",
    "Replayed",
    "create_trigger",
    "fire_trigger",
    "get_trigger",
    "list_triggers",
    "replay_trigger",
    "retire_trigger",
    "subscribe",
    "trigger_events",
    "unsubscribe",
    "update_trigger",
]
