"""The trigger registry, its subscriptions, the trigger stream and fire counts in Postgres.

Functions here run on a connection the caller owns, inside its transaction. The stream is
append-only (`flowhost.trigger_events`); the registry rows, subscriptions and fire counts are
what its events describe, written beside them (the fire counts can be rebuilt from it:
`rebuild_fire_counts`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Connection
from flowhost.db.json_codec import dumps_text
from flowhost.db.queries import QUERIES
from flowhost.triggers.declarations import redact

# Event types of a trigger's stream.
TRIGGER_REGISTERED = "trigger.registered"
TRIGGER_UPDATED = "trigger.updated"
TRIGGER_RETIRED = "trigger.retired"
TRIGGER_FIRED = "trigger.fired"
TRIGGER_REPLAYED = "trigger.replayed"
SUBSCRIPTION_ADDED = "subscription.added"
SUBSCRIPTION_REMOVED = "subscription.removed"
# An event trigger matched but did not fire: a chain of event triggers got too deep, or the
# fire failed (the same events go to the emitting run's stream).
TRIGGER_CHAIN_STOPPED = "trigger.chain_stopped"
TRIGGER_FIRE_FAILED = "trigger.fire_failed"
# A schedule's planned time that did not fire: skipped (overlap), queued behind live runs, or
# dropped by the catch-up policy (flowhost.triggers.scheduler).
SCHEDULE_SKIPPED = "schedule.skipped"
SCHEDULE_QUEUED = "schedule.queued"
SCHEDULE_MISSED = "schedule.missed"
# A broker message (MQTT, AMQP) that could not fire the trigger: its payload is unreadable as
# configured or the fire was refused; AMQP messages are dead-lettered after max_failures.
TRIGGER_REJECTED = "trigger.rejected"
EVENT_TYPES = (
    TRIGGER_REGISTERED,
    TRIGGER_UPDATED,
    TRIGGER_RETIRED,
    TRIGGER_FIRED,
    TRIGGER_REPLAYED,
    SUBSCRIPTION_ADDED,
    SUBSCRIPTION_REMOVED,
    TRIGGER_CHAIN_STOPPED,
    TRIGGER_FIRE_FAILED,
    SCHEDULE_SKIPPED,
    SCHEDULE_QUEUED,
    SCHEDULE_MISSED,
    TRIGGER_REJECTED,
)
# Fires of one trigger count in this many rows (see flowhost.trigger_fires).
FIRE_SLOTS = 16


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerRow:
    """A registry row, as a change reads it (locked)."""

    name: str
    type: str
    status: str
    source: str
    display_name: str | None
    description: str | None
    config: dict[str, Any]
    declared_at: str | None
    version: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TriggerRow:
        return cls(
            row["name"],
            row["type"],
            row["status"],
            row["source"],
            row["display_name"],
            row["description"],
            dict(row["config"]),
            row["declared_at"],
            row["version"],
        )


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriptionRow:
    trigger: str
    flow: str
    mode: str
    source: str

    def to_json(self) -> dict[str, str]:
        return {"flow": self.flow, "mode": self.mode, "source": self.source}


@dataclasses.dataclass(frozen=True, slots=True)
class NewTriggerEvent:
    trigger: str
    type: str
    data: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerEvent:
    id: int
    type: str
    ts: datetime
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "ts": self.ts.isoformat(), "data": self.data}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TriggerEvent:
        return cls(row["id"], row["type"], row["ts"], row["data"])


@dataclasses.dataclass(frozen=True, slots=True)
class TriggerView:
    """A trigger as the API and the CLI show it: declaration, status, subscriptions, figures."""

    name: str
    type: str
    status: str
    source: str
    display_name: str | None
    description: str | None
    config: dict[str, Any]
    declared_at: str | None
    version: int
    registered_at: datetime
    updated_at: datetime
    retired_at: datetime | None
    retired_reason: str | None
    total_fires: int
    last_fired_at: datetime | None
    subscriptions: tuple[SubscriptionRow, ...]

    @property
    def subscribers(self) -> int:
        return len(self.subscriptions)

    def to_json(self) -> dict[str, Any]:
        """JSON for the API and `--json`; secrets in the config are redacted."""
        return {
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "source": self.source,
            "displayName": self.display_name,
            "description": self.description,
            "config": redact(self.config),
            "declaredAt": self.declared_at,
            "version": self.version,
            "registeredAt": self.registered_at.isoformat(),
            "updatedAt": self.updated_at.isoformat(),
            "retiredAt": None if self.retired_at is None else self.retired_at.isoformat(),
            "retiredReason": self.retired_reason,
            "subscriptions": [s.to_json() for s in self.subscriptions],
            "stats": {
                "totalFires": self.total_fires,
                "lastFiredAt": None
                if self.last_fired_at is None
                else self.last_fired_at.isoformat(),
                "subscribers": self.subscribers,
            },
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TriggerView:
        return cls(
            name=row["name"],
            type=row["type"],
            status=row["status"],
            source=row["source"],
            display_name=row["display_name"],
            description=row["description"],
            config=dict(row["config"]),
            declared_at=row["declared_at"],
            version=row["version"],
            registered_at=row["registered_at"],
            updated_at=row["updated_at"],
            retired_at=row["retired_at"],
            retired_reason=row["retired_reason"],
            total_fires=int(row["total_fires"]),
            last_fired_at=row["last_fired_at"],
            subscriptions=tuple(
                SubscriptionRow(row["name"], s["flow"], s["mode"], s["source"])
                for s in row["subscriptions"]
            ),
        )


# -- the stream -----------------------------------------------------------------------------


async def append_trigger_events(conn: Connection, events: Sequence[NewTriggerEvent]) -> None:
    if not events:
        return
    await conn.execute(
        QUERIES["append_trigger_events"],
        {
            "events": dumps_text(
                [{"trigger": e.trigger, "type": e.type, "data": e.data} for e in events]
            )
        },
    )


async def trigger_events(
    conn: Connection,
    trigger: str,
    *,
    after: int = 0,
    limit: int = 100,
    types: Sequence[str] | None = None,
) -> list[TriggerEvent]:
    """Events of a trigger's stream after the event id `after`, oldest first."""
    rows = await (
        await conn.execute(
            QUERIES["trigger_events_of"],
            {
                "trigger": trigger,
                "after": after,
                "limit": limit,
                "types": None if types is None else list(types),
            },
        )
    ).fetchall()
    return [TriggerEvent.from_row(row) for row in rows]


async def latest_trigger_events(
    conn: Connection, trigger: str, *, limit: int, types: Sequence[str] | None = None
) -> list[TriggerEvent]:
    """The last `limit` events of a trigger's stream, oldest first."""
    rows = await (
        await conn.execute(
            QUERIES["latest_trigger_events"],
            {"trigger": trigger, "limit": limit, "types": None if types is None else list(types)},
        )
    ).fetchall()
    return [TriggerEvent.from_row(row) for row in rows]


async def fires_to_replay(
    conn: Connection,
    trigger: str,
    *,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[TriggerEvent]:
    rows = await (
        await conn.execute(
            QUERIES["fires_to_replay"],
            {"trigger": trigger, "limit": limit, "since": since, "until": until},
        )
    ).fetchall()
    return [TriggerEvent(row["id"], TRIGGER_FIRED, row["ts"], row["data"]) for row in rows]


# -- firing ---------------------------------------------------------------------------------


async def trigger_for_fire(conn: Connection, name: str) -> dict[str, Any] | None:
    """The trigger and its subscriptions (`[{flow, mode, hash}]`), or None."""
    row = await (await conn.execute(QUERIES["trigger_for_fire"], {"name": name})).fetchone()
    return None if row is None else dict(row)


async def stored_definitions(conn: Connection, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Flow name -> {definition, definition_hash} last registered by a host."""
    rows = await (
        await conn.execute(QUERIES["stored_definitions"], {"names": list(names)})
    ).fetchall()
    return {row["name"]: dict(row) for row in rows}


async def claim_delivery(conn: Connection, trigger: str, key: str) -> bool:
    """Take the delivery key for this fire; False when an earlier fire (committed) has it."""
    cursor = await conn.execute(QUERIES["claim_delivery"], {"trigger": trigger, "key": key})
    return await cursor.fetchone() is not None


async def fire_of_delivery(conn: Connection, trigger: str, key: str) -> TriggerEvent | None:
    row = await (
        await conn.execute(QUERIES["fire_of_delivery"], {"trigger": trigger, "key": key})
    ).fetchone()
    return None if row is None else TriggerEvent(row["id"], TRIGGER_FIRED, row["ts"], row["data"])


async def record_fire(
    conn: Connection,
    trigger: str,
    data: dict[str, Any],
    *,
    fire_id: uuid.UUID,
    delivery_key: str | None,
) -> tuple[int, datetime]:
    """Append the trigger.fired event, count the fire, answer its delivery key: one statement.
    Returns the event's id and time."""
    row = await (
        await conn.execute(
            QUERIES["record_fire"],
            {
                "trigger": trigger,
                "data": Jsonb(data),
                "slot": fire_id.int % FIRE_SLOTS,
                "delivery_key": delivery_key,
            },
        )
    ).fetchone()
    assert row is not None, "record_fire returns its event"
    return row["id"], row["ts"]


async def trigger_depths(conn: Connection, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many event-trigger hops led to each run."""
    rows = await (
        await conn.execute(QUERIES["trigger_depths"], {"run_ids": list(run_ids)})
    ).fetchall()
    return {row["run_id"]: int(row["depth"]) for row in rows}


async def rebuild_fire_counts(conn: Connection) -> None:
    """Recompute every trigger's fire count and last fire from its trigger.fired events. Call
    inside a transaction."""
    await conn.execute(QUERIES["lock_trigger_fires"])
    await conn.execute(QUERIES["clear_trigger_fires"])
    await conn.execute(QUERIES["count_trigger_fires"])


# -- the registry ---------------------------------------------------------------------------


async def event_triggers_snapshot(conn: Connection) -> tuple[int, list[dict[str, Any]]]:
    """(registry generation, [{name, config}] of the active event triggers)."""
    row = await (await conn.execute(QUERIES["event_triggers_snapshot"])).fetchone()
    assert row is not None
    return int(row["generation"]), list(row["triggers"])


async def registry_generation(conn: Connection) -> int:
    row = await (await conn.execute(QUERIES["trigger_registry_generation"])).fetchone()
    assert row is not None, "migration 0009 inserts the registry's row"
    return int(row["generation"])


async def lock_for_sync(conn: Connection) -> None:
    await conn.execute(QUERIES["lock_trigger_sync"])


async def triggers_for_update(conn: Connection) -> dict[str, TriggerRow]:
    rows = await (await conn.execute(QUERIES["triggers_for_update"])).fetchall()
    return {row["name"]: TriggerRow.from_row(row) for row in rows}


async def trigger_for_update(conn: Connection, name: str) -> TriggerRow | None:
    row = await (await conn.execute(QUERIES["trigger_for_update"], {"name": name})).fetchone()
    return None if row is None else TriggerRow.from_row(row)


async def all_subscriptions(conn: Connection) -> list[SubscriptionRow]:
    rows = await (await conn.execute(QUERIES["all_subscriptions"])).fetchall()
    return [SubscriptionRow(r["trigger"], r["flow"], r["mode"], r["source"]) for r in rows]


async def subscriptions_of(conn: Connection, trigger: str) -> list[SubscriptionRow]:
    rows = await (await conn.execute(QUERIES["subscriptions_of"], {"trigger": trigger})).fetchall()
    return [SubscriptionRow(r["trigger"], r["flow"], r["mode"], r["source"]) for r in rows]


def _trigger_params(row: TriggerRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "type": row.type,
        "status": row.status,
        "source": row.source,
        "display_name": row.display_name,
        "description": row.description,
        "config": Jsonb(row.config),
        "declared_at": row.declared_at,
    }


async def insert_trigger(conn: Connection, row: TriggerRow) -> bool:
    """Register a new trigger (active, version 1); False if the name is taken."""
    cursor = await conn.execute(QUERIES["insert_trigger"], _trigger_params(row))
    return await cursor.fetchone() is not None


async def update_trigger(conn: Connection, row: TriggerRow) -> int:
    """Write `row`'s declaration and status; returns the new version."""
    found = await (await conn.execute(QUERIES["update_trigger"], _trigger_params(row))).fetchone()
    assert found is not None, "update_trigger runs on a row the caller locked"
    return int(found["version"])


async def retire_trigger(conn: Connection, name: str, reason: str) -> int | None:
    """Retire the trigger; its new version, or None if it was retired already."""
    row = await (
        await conn.execute(QUERIES["retire_trigger"], {"name": name, "reason": reason})
    ).fetchone()
    return None if row is None else int(row["version"])


async def upsert_subscription(conn: Connection, subscription: SubscriptionRow) -> None:
    await conn.execute(
        QUERIES["upsert_subscription"],
        {
            "trigger": subscription.trigger,
            "flow": subscription.flow,
            "mode": subscription.mode,
            "source": subscription.source,
        },
    )


async def delete_subscription(conn: Connection, trigger: str, flow: str) -> None:
    await conn.execute(QUERIES["delete_subscription"], {"trigger": trigger, "flow": flow})


async def list_triggers(
    conn: Connection,
    *,
    name: str | None = None,
    type: str | None = None,
    status: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[TriggerView]:
    rows = await (
        await conn.execute(
            QUERIES["list_triggers"],
            {"name": name, "type": type, "status": status, "after": after, "limit": limit},
        )
    ).fetchall()
    return [TriggerView.from_row(row) for row in rows]
