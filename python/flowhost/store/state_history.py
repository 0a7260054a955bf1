"""A run's state as of any event: replayed from its state.set / state.delete events.

The `state` table is a write-through projection of those events; `state_at` rebuilds the same
mapping as it stood after a given event (time travel).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.errors import InvalidInputError
from flowhost.store.events import STATE_DELETE, STATE_SET


def reduce_state(events: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Fold (type, data) state events, in stream order, into the key -> value mapping they
    leave. Pure; other event types are ignored."""
    state: dict[str, Any] = {}
    for kind, data in events:
        if kind == STATE_SET:
            state[data["key"]] = data["value"]
        elif kind == STATE_DELETE:
            state.pop(data["key"], None)
    return dict(sorted(state.items()))


async def state_at(conn: Connection, run_id: uuid.UUID, event_id: int) -> dict[str, Any]:
    """The state of run `run_id` after event `event_id` (any id of the event log: the run's
    state events up to and including it count)."""
    if event_id < 1:
        raise InvalidInputError(f"event id must be 1 or more, got {event_id}")
    rows = await (
        await conn.execute(QUERIES["state_events_until"], {"run_id": run_id, "event_id": event_id})
    ).fetchall()
    return reduce_state((row["type"], row["data"]) for row in rows)
