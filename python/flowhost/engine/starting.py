"""Starting one run of a flow, with the options every way of starting one shares.

`ctx.flow.start`, the CLI, triggers and the API all start runs through `start_run`, so that
parent links, delays, priorities and start keys behave the same whoever starts the run.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.orchestrator import start_runs


@dataclasses.dataclass(frozen=True, slots=True)
class StartOptions:
    # The run whose step starts this one (ctx.flow.start): the child run is linked to it.
    parent_run_id: uuid.UUID | None = None
    # Seconds before the entry step may run.
    delay: float = 0.0
    # At most one run of the flow per key, ever: a second start returns the first run (how a
    # retried step that starts a flow gets the run its first attempt started).
    idempotency_key: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class StartedRun:
    run_id: uuid.UUID
    # False when a start key returned a run that already existed.
    created: bool = True


async def start_run(
    conn: Connection, flow: FlowDefinition, data: Any, options: StartOptions | None = None
) -> StartedRun:
    """Start one run of `flow` with input `data`; call inside a transaction."""
    options = options or StartOptions()
    run_id = uuid.uuid4()
    if options.idempotency_key is not None:
        key = {"flow": flow.name, "key": options.idempotency_key, "run_id": run_id}
        taken = await (await conn.execute(QUERIES["claim_start_key"], key)).fetchone()
        if taken is None:
            row = await (await conn.execute(QUERIES["run_of_start_key"], key)).fetchone()
            assert row is not None, "a start key that is taken names its run"
            return StartedRun(row["run_id"], created=False)
    await start_runs(
        conn, flow, [data], [run_id], parent_run_id=options.parent_run_id, delay=options.delay
    )
    return StartedRun(run_id)
