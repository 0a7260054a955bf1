"""Starting one run of a flow, with the options every way of starting one shares.

`ctx.flow.start`, the CLI, triggers and the API all start runs through `start_run`, so that
parent links, delays, priorities and start keys behave the same whoever starts the run.

Start keys are decided by unique keys in Postgres (`INSERT ... ON CONFLICT`), never by a read
followed by a write, so concurrent starts on any number of hosts agree:
- `idempotency_key`: at most one run per key, ever;
- `dedupe_key` + `dedupe_window`: a start within the window after the key's first start returns
  that run;
- `debounce_key` + `debounce_window`: the run starts `debounce_window` seconds after the last
  start with the key; a start before then replaces its input and pushes its start back.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import uuid
from collections.abc import Mapping
from typing import Any

from psycopg.types.json import Jsonb

from flowhost import tracing
from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.engine.definitions import FlowDefinition
from flowhost.engine.orchestrator import StartTiming, start_runs
from flowhost.engine.scheduling import concurrency_key
from flowhost.errors import InvalidInputError

# Run priorities: higher runs first (their waiting runs and their steps' jobs).
MIN_PRIORITY = -1000
MAX_PRIORITY = 1000
# Start keys are primary-key columns: kept to a size an index takes without trouble.
MAX_START_KEY_LENGTH = 512
# ctx.flow.start's params (docs/protocol.md) that are start options.
PARAM_NAMES = (
    "idempotency_key",
    "priority",
    "delay",
    "dedupe_key",
    "dedupe_window",
    "debounce_key",
    "debounce_window",
)


@dataclasses.dataclass(frozen=True, slots=True)
class StartOptions:
    """How a run starts; invalid options raise InvalidInputError (a ValueError)."""

    # The run whose step starts this one (ctx.flow.start): the child run is linked to it.
    parent_run_id: uuid.UUID | None = None
    # From MIN_PRIORITY to MAX_PRIORITY; None: the flow's declared priority (default 0).
    priority: int | None = None
    # Seconds before the run starts, or the moment it starts (not both): it is queued till then.
    delay: float = 0.0
    start_at: datetime.datetime | None = None
    # At most one run of the flow per key, ever: a second start returns the first run (how a
    # retried step that starts a flow gets the run its first attempt started).
    idempotency_key: str | None = None
    # A second start with this key within `dedupe_window` seconds of the first returns the
    # first run.
    dedupe_key: str | None = None
    dedupe_window: float | None = None
    # The run starts `debounce_window` seconds after the last start with this key; until then
    # each start replaces its input and returns it.
    debounce_key: str | None = None
    debounce_window: float | None = None

    def __post_init__(self) -> None:
        if self.priority is not None:
            _check_priority(self.priority)
        _check_seconds(self.delay, "delay", allow_zero=True)
        if self.start_at is not None:
            if not isinstance(self.start_at, datetime.datetime) or self.start_at.tzinfo is None:
                raise InvalidInputError("start_at must be a datetime with a time zone")
            if self.delay > 0:
                raise InvalidInputError("give delay or start_at, not both")
        for name in ("idempotency_key", "dedupe_key", "debounce_key"):
            _check_key(getattr(self, name), name)
        for key, window in (("dedupe_key", "dedupe_window"), ("debounce_key", "debounce_window")):
            if (getattr(self, key) is None) != (getattr(self, window) is None):
                raise InvalidInputError(f"{key} and {window} go together: give both or neither")
            if getattr(self, window) is not None:
                _check_seconds(getattr(self, window), window, allow_zero=False)
        keys = [
            name
            for name in ("idempotency_key", "dedupe_key", "debounce_key")
            if getattr(self, name) is not None
        ]
        if len(keys) > 1:
            raise InvalidInputError(f"give one start key at most, not {' and '.join(keys)}")
        if self.debounce_key is not None and (self.delay > 0 or self.start_at is not None):
            raise InvalidInputError(
                "a debounced start is delayed by its debounce_window; it takes no delay or start_at"
            )

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any], *, parent_run_id: uuid.UUID | None = None
    ) -> StartOptions:
        """Options from `flow.start` params (docs/protocol.md); other keys are ignored."""
        given = {name: params[name] for name in PARAM_NAMES if params.get(name) is not None}
        delay = given.get("delay", 0.0)
        _check_seconds(delay, "delay", allow_zero=True)
        return cls(
            parent_run_id=parent_run_id,
            priority=given.get("priority"),
            delay=float(delay),
            idempotency_key=given.get("idempotency_key"),
            dedupe_key=given.get("dedupe_key"),
            dedupe_window=given.get("dedupe_window"),
            debounce_key=given.get("debounce_key"),
            debounce_window=given.get("debounce_window"),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class StartedRun:
    run_id: uuid.UUID
    # False when a start key returned a run that already existed.
    created: bool = True


async def start_run(
    conn: Connection,
    flow: FlowDefinition,
    data: Any,
    options: StartOptions | None = None,
    *,
    started_data: Mapping[str, Any] | None = None,
) -> StartedRun:
    """Start one run of `flow` with input `data`; call inside a transaction. `started_data`
    goes into the run's flow.started event (a trigger's fire says which it was)."""
    with tracing.span("flowhost.run.start", {"flowhost.flow": flow.name}):
        return await _start_run(conn, flow, data, options, started_data)


async def _start_run(
    conn: Connection,
    flow: FlowDefinition,
    data: Any,
    options: StartOptions | None,
    started_data: Mapping[str, Any] | None,
) -> StartedRun:
    options = options or StartOptions()
    run_id = uuid.uuid4()
    existing = await _run_of_start_key(conn, flow, run_id, options)
    if existing is not None:
        return StartedRun(existing, created=False)
    timing = StartTiming(
        delay=options.delay,
        start_at=options.start_at,
        reason="start_at" if options.start_at is not None else "delay",
    )
    if options.debounce_key is not None:
        assert options.debounce_window is not None, "checked by StartOptions"
        row = await (
            await conn.execute(
                QUERIES["claim_debounce_key"],
                {
                    "flow": flow.name,
                    "key": options.debounce_key,
                    "run_id": run_id,
                    "window": options.debounce_window,
                },
            )
        ).fetchone()
        assert row is not None, "claim_debounce_key always returns its row"
        if row["run_id"] != run_id:
            await conn.execute(
                QUERIES["replace_pending_input"],
                {
                    "run_id": row["run_id"],
                    "input": Jsonb(data),
                    "key": concurrency_key(flow.limits, data),
                    "start_at": row["start_at"],
                },
            )
            return StartedRun(row["run_id"], created=False)
        timing = StartTiming(start_at=row["start_at"], reason="debounce")
    await start_runs(
        conn,
        flow,
        [data],
        [run_id],
        parent_run_id=options.parent_run_id,
        priority=options.priority,
        timing=timing,
        started_data=started_data,
    )
    return StartedRun(run_id)


async def _run_of_start_key(
    conn: Connection, flow: FlowDefinition, run_id: uuid.UUID, options: StartOptions
) -> uuid.UUID | None:
    """The run an idempotency or dedupe key already names, else None (the key is now
    `run_id`'s, committed with the run)."""
    if options.idempotency_key is not None:
        key = {"flow": flow.name, "key": options.idempotency_key, "run_id": run_id}
        taken = await (await conn.execute(QUERIES["claim_start_key"], key)).fetchone()
        if taken is None:
            row = await (await conn.execute(QUERIES["run_of_start_key"], key)).fetchone()
            assert row is not None, "a start key that is taken names its run"
            return uuid.UUID(str(row["run_id"]))
    if options.dedupe_key is not None:
        key = {
            "flow": flow.name,
            "key": options.dedupe_key,
            "run_id": run_id,
            "window": options.dedupe_window,
        }
        taken = await (await conn.execute(QUERIES["claim_dedupe_key"], key)).fetchone()
        if taken is None:
            row = await (await conn.execute(QUERIES["run_of_dedupe_key"], key)).fetchone()
            assert row is not None, "a dedupe key that is taken names its run"
            return uuid.UUID(str(row["run_id"]))
        await conn.execute(QUERIES["forget_expired_dedupe_keys"], key)
    return None


def _check_priority(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"priority must be an integer (got {value!r})")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidInputError(
            f"priority must be from {MIN_PRIORITY} to {MAX_PRIORITY} (got {value})"
        )


def _check_seconds(value: object, name: str, *, allow_zero: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number of seconds (got {value!r})")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidInputError(f"{name} must be {bound} seconds (got {value!r})")


def _check_key(value: object, name: str) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{name} must be a non-empty string (got {value!r})")
    if len(value) > MAX_START_KEY_LENGTH:
        raise InvalidInputError(
            f"{name} must be at most {MAX_START_KEY_LENGTH} characters (got {len(value)})"
        )
