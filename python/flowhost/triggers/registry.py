"""Changes of the trigger registry, each written with its event of the trigger stream.

Both ways triggers change go through here: the sync of the functions' configs at host start
(flowhost.triggers.sync) and the API (flowhost.triggers.service). Call inside a transaction, on
rows the caller locked. Configs are recorded redacted (declarations.redact): secrets stay out of
the stream.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flowhost.db.database import Connection
from flowhost.store import triggers as store
from flowhost.store.triggers import (
    SUBSCRIPTION_ADDED,
    SUBSCRIPTION_REMOVED,
    TRIGGER_REGISTERED,
    TRIGGER_RETIRED,
    TRIGGER_UPDATED,
    NewTriggerEvent,
    SubscriptionRow,
    TriggerRow,
)
from flowhost.triggers.declarations import TriggerSpec, redact

# The fields of a trigger a change compares, with the name its event uses.
_CHANGED_FIELDS = {
    "type": "type",
    "status": "status",
    "source": "source",
    "display_name": "displayName",
    "description": "description",
    "config": "config",
    "declared_at": "declaredAt",
}


def new_row(spec: TriggerSpec, *, source: str, declared_at: str | None = None) -> TriggerRow:
    return TriggerRow(
        name=spec.name,
        type=spec.type,
        status="active",
        source=source,
        display_name=spec.display_name,
        description=spec.description,
        config=dict(spec.config),
        declared_at=declared_at,
        version=1,
    )


async def register(conn: Connection, row: TriggerRow) -> bool:
    """Register a new trigger and record `trigger.registered`; False if the name is taken."""
    if not await store.insert_trigger(conn, row):
        return False
    await store.append_trigger_events(
        conn,
        [
            NewTriggerEvent(
                row.name,
                TRIGGER_REGISTERED,
                {
                    "type": row.type,
                    "source": row.source,
                    "displayName": row.display_name,
                    "description": row.description,
                    "config": redact(row.config),
                    "declaredAt": row.declared_at,
                },
            )
        ],
    )
    return True


def changes(current: TriggerRow, wanted: TriggerRow) -> dict[str, Any]:
    """What differs, as `trigger.updated` records it: field -> {from, to}."""
    found = {}
    for field, key in _CHANGED_FIELDS.items():
        before, after = getattr(current, field), getattr(wanted, field)
        if before != after:
            if field == "config":
                before, after = redact(before), redact(after)
            found[key] = {"from": before, "to": after}
    return found


async def update(conn: Connection, current: TriggerRow, wanted: TriggerRow) -> TriggerRow:
    """Write `wanted` over `current` (locked) with a `trigger.updated` event, when they differ;
    returns the row as written (its version one higher)."""
    found = changes(current, wanted)
    if not found:
        return current
    version = await store.update_trigger(conn, wanted)
    await store.append_trigger_events(
        conn,
        [NewTriggerEvent(wanted.name, TRIGGER_UPDATED, {"changes": found, "version": version})],
    )
    return dataclasses.replace(wanted, version=version)


async def retire(conn: Connection, current: TriggerRow, reason: str) -> TriggerRow:
    """Retire the trigger (it fires no more; its subscriptions stay, inert) with a
    `trigger.retired` event holding its final figures; a retired trigger is left as it is."""
    version = await store.retire_trigger(conn, current.name, reason)
    if version is None:
        return current
    [view] = await store.list_triggers(conn, name=current.name, limit=1)
    final = {
        "totalFires": view.total_fires,
        "lastFiredAt": None if view.last_fired_at is None else view.last_fired_at.isoformat(),
        "subscribers": view.subscribers,
    }
    await store.append_trigger_events(
        conn,
        [
            NewTriggerEvent(
                current.name,
                TRIGGER_RETIRED,
                {"reason": reason, "finalStats": final, "version": version},
            )
        ],
    )
    return dataclasses.replace(current, status="retired", version=version)


async def subscribe(
    conn: Connection, subscription: SubscriptionRow, previous: SubscriptionRow | None
) -> bool:
    """Add the subscription, or change its mode or source, with `subscription.added`; False
    when it is there already as it is."""
    if previous == subscription:
        return False
    await store.upsert_subscription(conn, subscription)
    data: dict[str, Any] = {
        "flow": subscription.flow,
        "mode": subscription.mode,
        "source": subscription.source,
    }
    if previous is not None:
        data["previous"] = {"mode": previous.mode, "source": previous.source}
    await store.append_trigger_events(
        conn, [NewTriggerEvent(subscription.trigger, SUBSCRIPTION_ADDED, data)]
    )
    return True


async def unsubscribe(conn: Connection, subscription: SubscriptionRow, reason: str) -> None:
    await store.delete_subscription(conn, subscription.trigger, subscription.flow)
    await store.append_trigger_events(
        conn,
        [
            NewTriggerEvent(
                subscription.trigger,
                SUBSCRIPTION_REMOVED,
                {
                    "flow": subscription.flow,
                    "mode": subscription.mode,
                    "source": subscription.source,
                    "reason": reason,
                },
            )
        ],
    )
