"""Events of a run's stream: their types, and reading them back."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flowhost._core import encode_events
from flowhost.db.database import Connection, in_pipeline
from flowhost.db.queries import QUERIES
from flowhost.store.json_data import json_text

# Event types of a run stream.
FLOW_STARTED = "flow.started"
FLOW_COMPLETED = "flow.completed"
FLOW_FAILED = "flow.failed"
STEP_STARTED = "step.started"
STEP_COMPLETED = "step.completed"
STEP_RETRY = "step.retry"
STEP_FAILED = "step.failed"
STEP_SKIPPED = "step.skipped"
STEP_PROGRESS = "step.progress"
FLOW_CANCELED = "flow.canceled"
FLOW_RETRIED = "flow.retried"
STEP_CANCELED = "step.canceled"
# Flow control (docs/flow-control.md): a run waits for a slot or its start time, then starts; a
# debounced start replaced its input; a step waits for a slot, then gets its job.
FLOW_WAITING = "flow.waiting"
FLOW_ADMITTED = "flow.admitted"
FLOW_DEBOUNCED = "flow.debounced"
STEP_WAITING = "step.waiting"
STEP_ADMITTED = "step.admitted"
FLOW_STALLED = "flow.stalled"
STEP_STALLED = "step.stalled"
FLOW_MIGRATED = "flow.migrated"
LOG = "log"
EMIT = "emit"
STATE_SET = "state.set"
STATE_DELETE = "state.delete"
# Actions out of a step (docs/connectors.md#actions-out): a message published, an HTTP request.
PUBLISH = "publish"
HTTP = "http"


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    run_id: uuid.UUID
    type: str
    data: dict[str, Any]
    step: str | None = None
    attempt: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    step: str | None
    attempt: int | None
    ts: datetime
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        return cls(row["id"], row["type"], row["step"], row["attempt"], row["ts"], row["data"])


async def append_events(conn: Connection, events: Sequence[NewEvent]) -> None:
    """Append `events` to their runs' streams, in order, in one round trip (binary COPY).

    Runs in the caller's transaction, if any. Data that is not JSON (or holds a NUL character,
    which Postgres cannot store) raises before anything is sent. On a connection in pipeline
    mode, which has no COPY, the events go in one INSERT that is only sent: it travels with
    the statements that follow it.
    """
    if not events:
        return
    if in_pipeline(conn):
        await conn.execute(
            QUERIES["insert_events"],
            {
                "run_ids": [e.run_id for e in events],
                "types": [e.type for e in events],
                "steps": [e.step for e in events],
                "attempts": [e.attempt for e in events],
                "data": [json_text(e.data, f"the data of a {e.type} event") for e in events],
            },
        )
        return
    stream = encode_events([(e.run_id, e.type, e.step, e.attempt, e.data) for e in events])
    async with conn.cursor().copy(QUERIES["copy_events"]) as copy:
        await copy.write(stream)


async def events_of_run(
    conn: Connection, run_id: uuid.UUID, *, after: int = 0, limit: int = 1000
) -> list[Event]:
    cursor = await conn.execute(
        QUERIES["events_of_run"], {"run_id": run_id, "after": after, "limit": limit}
    )
    return [Event.from_row(row) for row in await cursor.fetchall()]
