"""Code versions: which definition of each flow the live hosts serve, the runs parked on a
definition nobody serves, and moving runs onto another definition.

Every run records the hash of the flow definition it started with. A host only runs steps of
runs on the definition it serves; the other jobs go back to the queue for a host that does.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.errors import InvalidInputError
from flowhost.queue.jobs import entrypoint_for
from flowhost.store import reads


@dataclasses.dataclass(frozen=True, slots=True)
class FlowVersion:
    """One definition of a flow, as a host serves it."""

    flow: str
    definition_hash: str
    definition: dict[str, Any]
    stall_timeout: float  # seconds


@dataclasses.dataclass(frozen=True, slots=True)
class ParkedRun:
    id: uuid.UUID
    flow: str
    status: str
    definition_hash: str
    # When a host last served its definition, or the run's last activity if later.
    since: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "flow": self.flow,
            "status": self.status,
            "definition_hash": self.definition_hash,
            "since": self.since.isoformat(),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class ServedDefinition:
    definition_hash: str
    hosts: int
    steps: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """What `migrate_runs` did: runs moved (with the hash they had), runs refused (with the
    scheduled steps the target definition lacks)."""

    flow: str
    to_hash: str
    moved: dict[uuid.UUID, str]
    refused: dict[uuid.UUID, list[str]]


async def register_definitions(conn: Connection, versions: Sequence[FlowVersion]) -> None:
    """Record the definitions a host serves, by hash, with their stall timeouts."""
    for version in versions:
        await conn.execute(
            QUERIES["register_flow_version"],
            {
                "flow": version.flow,
                "definition_hash": version.definition_hash,
                "definition": Jsonb(version.definition),
                "stall_timeout_ms": round(version.stall_timeout * 1000),
            },
        )


async def parked_runs(
    conn: Connection, *, stale_after: float, flow: str | None = None, limit: int = 100
) -> list[ParkedRun]:
    """Live runs whose definition no live host serves (seen within `stale_after` seconds),
    longest parked first."""
    rows = await (
        await conn.execute(
            QUERIES["parked_runs"], {"stale_after": stale_after, "flow": flow, "limit": limit}
        )
    ).fetchall()
    return [
        ParkedRun(row["id"], row["flow"], row["status"], row["definition_hash"], row["since"])
        for row in rows
    ]


async def served_definitions(
    conn: Connection, flow: str, *, stale_after: float
) -> list[ServedDefinition]:
    rows = await (
        await conn.execute(
            QUERIES["served_definitions"], {"flow": flow, "stale_after": stale_after}
        )
    ).fetchall()
    return [
        ServedDefinition(row["definition_hash"], int(row["hosts"]), tuple(row["steps"]))
        for row in rows
    ]


async def migrate_runs(
    conn: Connection,
    *,
    flow: str,
    to_hash: str,
    steps: Sequence[str],
    run_ids: Sequence[uuid.UUID] | None = None,
    by: str,
) -> Migration:
    """Move live runs of `flow` (those of `run_ids`, or all on another definition) onto
    definition `to_hash` whose steps are `steps`; a run with a scheduled step that is not in
    `steps` is refused. The queued jobs of the runs moved become due at once. Call inside a
    transaction."""
    rows = await (
        await conn.execute(
            QUERIES["migrate_runs"],
            {
                "flow": flow,
                "to_hash": to_hash,
                "steps": list(steps),
                "run_ids": None if run_ids is None else list(run_ids),
                "by": by,
            },
        )
    ).fetchall()
    moved = {row["id"]: row["definition_hash"] for row in rows if row["missing"] is None}
    refused = {row["id"]: list(row["missing"]) for row in rows if row["missing"] is not None}
    if moved:
        await conn.execute(
            QUERIES["make_run_jobs_due"],
            {
                "entrypoint": entrypoint_for(flow),
                "run_ids": [str(run_id) for run_id in moved],
            },
        )
    return Migration(flow, to_hash, moved, refused)


async def adopt_served_definition(
    conn: Connection,
    *,
    flow: str,
    stale_after: float,
    run_ids: Sequence[uuid.UUID] | None = None,
    to_hash: str | None = None,
    by: str,
) -> Migration:
    """Move runs onto the definition of `flow` the live hosts serve (`to_hash` chooses when
    they serve several). Raises InvalidInputError, with the reason, when there is none to
    adopt. Call inside a transaction."""
    served = await served_definitions(conn, flow, stale_after=stale_after)
    if to_hash is not None:
        chosen = [s for s in served if s.definition_hash == to_hash]
        if not chosen:
            hashes = ", ".join(s.definition_hash for s in served) or "none"
            raise InvalidInputError(
                f"no live host serves definition {to_hash} of flow {flow!r} (served: {hashes})"
            )
    elif not served:
        raise InvalidInputError(f"no live host serves flow {flow!r}: nothing to migrate to")
    elif len(served) > 1:
        hashes = ", ".join(f"{s.definition_hash} ({s.hosts} hosts)" for s in served)
        raise InvalidInputError(
            f"live hosts serve several definitions of flow {flow!r}: {hashes}; choose one"
        )
    else:
        chosen = served
    target = chosen[0]
    if not target.steps:
        raise InvalidInputError(
            f"definition {target.definition_hash} of flow {flow!r} is not recorded"
        )
    return await migrate_runs(
        conn, flow=flow, to_hash=target.definition_hash, steps=target.steps, run_ids=run_ids, by=by
    )


async def migrate_live_runs(
    conn: Connection,
    *,
    run_id: uuid.UUID | None = None,
    flow: str | None = None,
    stale_after: float,
    to_hash: str | None = None,
    by: str,
) -> Migration:
    """Move one live run (`run_id`), or every live run of `flow` on another definition, onto
    the definition the live hosts serve (`flowhost runs migrate`, `POST /api/runs/migrate`).
    InvalidInputError when the run is not live or there is no definition to adopt. Call inside
    a transaction."""
    if (run_id is None) == (flow is None):
        raise InvalidInputError("give a run or a flow (one of them)")
    run_ids = None
    if run_id is not None:
        run = await reads.get_run(conn, run_id)
        if run["status"] not in reads.LIVE_STATUSES:
            raise InvalidInputError(f"run {run_id} is {run['status']}: only live runs move")
        flow, run_ids = run["flow"], [run_id]
    assert flow is not None
    return await adopt_served_definition(
        conn, flow=flow, stale_after=stale_after, run_ids=run_ids, to_hash=to_hash, by=by
    )
