"""The awaits table: waits of steps that any host registers, resolves and times out.

Functions here run on a connection the caller owns, inside its transaction. An await changes
only while its run's row is locked (`lock_runs`), which the caller takes first.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Connection, Deferred
from flowhost.db.json_codec import dumps_text
from flowhost.db.queries import QUERIES

WAITING = "waiting"
RESOLVED = "resolved"
TIMED_OUT = "timed_out"
CANCELED = "canceled"


@dataclasses.dataclass(frozen=True, slots=True)
class AwaitRow:
    id: int
    run_id: uuid.UUID
    step: str
    position: str
    type: str
    status: str
    registration: int
    config: dict[str, Any]
    token: str | None
    method: str | None
    resolve_at: datetime | None
    timeout_at: datetime | None
    held: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AwaitRow:
        return cls(
            id=row["id"],
            run_id=row["run_id"],
            step=row["step"],
            position=row["position"],
            type=row["type"],
            status=row["status"],
            registration=row["registration"],
            config=row["config"],
            token=row["token"],
            method=row["method"],
            resolve_at=row["resolve_at"],
            timeout_at=row["timeout_at"],
            held=row["held"],
        )

    def hook(self, kind: str) -> str | None:
        """The function to run on `kind` ("register", "resolve", "timeout"), if any."""
        hooks = self.config.get("hooks") or {}
        name = hooks.get(kind)
        return name if isinstance(name, str) and name else None

    def describe(self) -> dict[str, Any]:
        """What events and hooks may tell about the await: never its token."""
        return {
            "type": self.type,
            "position": self.position,
            "registration": self.registration,
            "timeout_at": _iso(self.timeout_at),
            "resolve_at": _iso(self.resolve_at),
            "method": self.method,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class LockedRun:
    id: uuid.UUID
    flow: str
    status: str
    emitted: dict[str, Any]
    priority: int = 0
    concurrency_key: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LockedRun:
        return cls(
            row["id"],
            row["flow"],
            row["status"],
            row["emitted"],
            row["priority"],
            row["concurrency_key"],
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def register(conn: Connection, awaits: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert awaits (rows as `register_awaits` reads them) with their await.registered
    events; returns the rows inserted (an await already registered is left out)."""
    if not awaits:
        return []
    cursor = await conn.execute(QUERIES["register_awaits"], {"awaits": dumps_text(list(awaits))})
    return await cursor.fetchall()


async def register_again(
    conn: Connection,
    await_id: int,
    *,
    delay: float | None,
    resolve_at: datetime | None,
    timeout: float | None,
) -> dict[str, Any] | None:
    cursor = await conn.execute(
        QUERIES["register_await_again"],
        {"id": await_id, "delay": delay, "resolve_at": resolve_at, "timeout": timeout},
    )
    return await cursor.fetchone()


async def find_event_awaits(
    conn: Connection, events: Sequence[tuple[str, Any]]
) -> Deferred[list[tuple[int, int, uuid.UUID]]]:
    """(index of the event in `events`, await id, run id) for each waiting await an event
    resolves; read later (see `Deferred`)."""
    payload = [{"i": i, "name": name, "payload": data} for i, (name, data) in enumerate(events)]
    cursor = await conn.execute(QUERIES["find_event_awaits"], {"events": dumps_text(payload)})
    return Deferred(cursor, lambda rows: [(row["i"], row["id"], row["run_id"]) for row in rows])


async def lock_runs(conn: Connection, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, LockedRun]:
    rows = await (
        await conn.execute(QUERIES["lock_await_runs"], {"run_ids": sorted(set(run_ids))})
    ).fetchall()
    return {row["id"]: LockedRun.from_row(row) for row in rows}


async def waiting_for_update(conn: Connection, ids: Sequence[int]) -> list[AwaitRow]:
    cursor = await conn.execute(QUERIES["awaits_for_update"], {"ids": sorted(set(ids))})
    return [AwaitRow.from_row(row) for row in await cursor.fetchall()]


async def settle(conn: Connection, await_id: int, status: str, resolution: Any) -> bool:
    """End a waiting await; False if it was no longer waiting."""
    cursor = await conn.execute(
        QUERIES["settle_await"],
        {"id": await_id, "status": status, "resolution": Jsonb(resolution)},
    )
    return await cursor.fetchone() is not None


async def cancel_awaits_of_runs(conn: Connection, run_ids: Sequence[uuid.UUID]) -> int:
    if not run_ids:
        return 0
    cursor = await conn.execute(QUERIES["cancel_awaits_of_runs"], {"run_ids": list(run_ids)})
    return len(await cursor.fetchall())


async def refresh_run_status(conn: Connection, run_ids: Sequence[uuid.UUID]) -> None:
    """A live run is `awaiting` while one of its awaits waits, `running` otherwise."""
    if run_ids:
        await conn.execute(QUERIES["refresh_await_status"], {"run_ids": sorted(set(run_ids))})


async def step_statuses(conn: Connection, run_id: uuid.UUID) -> dict[str, str]:
    rows = await (await conn.execute(QUERIES["step_statuses"], {"run_id": run_id})).fetchall()
    return {row["name"]: row["status"] for row in rows}


async def step_input(conn: Connection, run_id: uuid.UUID, step: str) -> Any:
    cursor = await conn.execute(QUERIES["step_input"], {"run_id": run_id, "step": step})
    row = await cursor.fetchone()
    return None if row is None else row["input"]


async def update_step(
    conn: Connection, query: str, run_id: uuid.UUID, step: str, **values: Any
) -> int | None:
    """Move an awaiting step on (`queue_awaited_step`, `complete_awaited_step`,
    `fail_awaiting_step`); its attempt, None if the step was not awaiting."""
    params = {"run_id": run_id, "step": step}
    params.update({key: Jsonb(value) for key, value in values.items()})
    cursor = await conn.execute(QUERIES[query], params)
    row = await cursor.fetchone()
    return None if row is None else int(row["attempt"])


async def await_of_token(conn: Connection, token: str) -> dict[str, Any] | None:
    cursor = await conn.execute(QUERIES["await_of_token"], {"token": token})
    return await cursor.fetchone()


async def await_of_token_for_update(conn: Connection, token: str) -> tuple[AwaitRow, bool] | None:
    """The await (lock its run first) and whether its timeout has passed."""
    cursor = await conn.execute(QUERIES["await_of_token_for_update"], {"token": token})
    row = await cursor.fetchone()
    return None if row is None else (AwaitRow.from_row(row), bool(row["overdue"]))


async def await_of_step(
    conn: Connection, run_id: uuid.UUID, step: str, position: str
) -> dict[str, Any] | None:
    cursor = await conn.execute(
        QUERIES["await_of_step"], {"run_id": run_id, "step": step, "position": position}
    )
    return await cursor.fetchone()


async def wake_sweepers(conn: Connection, due_at: datetime) -> None:
    await conn.execute(QUERIES["wake_sweepers"], {"due_at": due_at.isoformat()})


async def awaits_of_run(conn: Connection, run_id: uuid.UUID) -> list[dict[str, Any]]:
    return await (await conn.execute(QUERIES["awaits_of_run"], {"run_id": run_id})).fetchall()


async def rearm_steps(conn: Connection, run_id: uuid.UUID, names: Sequence[str]) -> None:
    """Steps of a run retried while their await before them never resolved: they wait again
    (register their awaits after this)."""
    if names:
        await conn.execute(QUERIES["rearm_steps"], {"run_id": run_id, "names": list(names)})


async def hold_entry_steps(conn: Connection, run_ids: Sequence[uuid.UUID], step: str) -> None:
    await conn.execute(QUERIES["hold_entry_steps"], {"run_ids": list(run_ids), "step": step})


async def lock_runs_with_due_awaits(conn: Connection, limit: int) -> dict[uuid.UUID, LockedRun]:
    """Runs with an await due, locked; runs locked by others are left for later."""
    cursor = await conn.execute(
        QUERIES["lock_runs_with_due_awaits"], {"limit": limit, "scan": 4 * limit}
    )
    return {row["id"]: LockedRun.from_row(row) for row in await cursor.fetchall()}


async def due_awaits_of_runs(
    conn: Connection, run_ids: Sequence[uuid.UUID]
) -> list[tuple[AwaitRow, bool]]:
    """The due awaits of these (locked) runs, each with whether it resolves (its resolve
    time came first) rather than times out."""
    if not run_ids:
        return []
    cursor = await conn.execute(QUERIES["due_awaits_of_runs"], {"run_ids": list(run_ids)})
    return [(AwaitRow.from_row(row), bool(row["resolves"])) for row in await cursor.fetchall()]


async def next_due(conn: Connection) -> float | None:
    """Seconds until the next waiting await is due (<= 0: overdue), None if none waits."""
    row = await (await conn.execute(QUERIES["next_await_due"])).fetchone()
    return None if row is None or row["seconds"] is None else float(row["seconds"])
