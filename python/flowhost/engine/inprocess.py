"""A step's `ctx` backed directly by Postgres, inside the host.

The in-process runtime hands it to the handler; for a step in a child, the host answers the
child's calls (docs/protocol.md) with the same object, so both runtimes behave alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.actions.step_actions import Actor, StepActions
from flowhost.db.database import Database
from flowhost.db.queries import QUERIES
from flowhost.engine.catalog import FunctionCatalog
from flowhost.engine.control import cancel_run
from flowhost.engine.definitions import FlowDefinition, StepDefinition
from flowhost.engine.orchestrator import AttemptRecord
from flowhost.engine.starting import StartOptions, start_run
from flowhost.errors import FlowNotFoundError, RunNotFoundError, RunStateError
from flowhost.store.events import HTTP, LOG, PUBLISH, STEP_PROGRESS, NewEvent
from flowhost.store.json_data import as_json, as_loose_json
from flowhost.workers.cancellation import Cancellation
from flowhost_worker import Awaited, RunContext
from flowhost_worker.context import LEVELS, ContextBackend
from flowhost_worker.job import HookCall

logger = logging.getLogger("flowhost.steps")

# ctx.flow.running answers at most this many runs (the oldest).
MAX_RUNNING_RUNS = 1000


class InProcessBackend:
    """Implements flowhost_worker.ContextBackend for one step attempt, or for one run of an
    await hook of the step (`hook` = its kind): a hook's events carry no attempt, its logs
    say which hook wrote them, and it cannot emit."""

    def __init__(
        self,
        database: Database,
        *,
        run_id: uuid.UUID,
        flow: str,
        step: str,
        attempt: int | None,
        emits: tuple[str, ...],
        record: AttemptRecord,
        flows: Mapping[str, FlowDefinition] | None = None,
        hook: str | None = None,
        actions: StepActions | None = None,
        env: tuple[str, ...] = (),
    ) -> None:
        """`actions`: the host's publishing connections and HTTP client (None: refused);
        `env`: the variables the step's function declares (`{env:NAME}` may read them)."""
        self._database = database
        self._run_id = run_id
        self._flow = flow
        self._step = step
        self._attempt = attempt
        self._emits = emits
        self._record = record
        self._flows = flows or {}
        self._hook = hook
        self._actions = actions
        self._env = frozenset(env)
        self._amqp_publishes = 0

    def _params(self, key: str) -> dict[str, Any]:
        return {"run_id": self._run_id, "step": self._step, "attempt": self._attempt, "key": key}

    async def state_get(self, key: str) -> tuple[bool, Any]:
        async with self._database.connection() as conn:
            row = await (await conn.execute(QUERIES["state_get"], self._params(key))).fetchone()
        return (False, None) if row is None else (True, row["value"])

    async def state_set(self, key: str, value: Any) -> None:
        data = as_json(value, f"state value for {key!r}")
        async with self._database.connection() as conn:
            await conn.execute(QUERIES["state_set"], {**self._params(key), "value": Jsonb(data)})

    async def state_delete(self, key: str) -> bool:
        async with self._database.connection() as conn:
            cursor = await conn.execute(QUERIES["state_delete"], self._params(key))
            return await cursor.fetchone() is not None

    async def emit(self, name: str, payload: Any) -> None:
        if self._hook is not None:
            raise ValueError(
                f"the {self._hook} hook of step {self._step!r} cannot emit {name!r}: await hooks "
                "cannot emit events"
            )
        check_declared_emit(self._step, self._emits, name)
        self._record.emits.append((name, as_json(payload, f"payload of {name!r}")))

    def log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        entry: dict[str, Any] = {"level": level, "message": message, "fields": fields}
        if self._hook is not None:
            entry["hook"] = self._hook
        data = as_loose_json(entry)
        self._record.logs.append(NewEvent(self._run_id, LOG, data, self._step, self._attempt))
        logger.log(
            LEVELS.get(level, logging.INFO),
            "%s/%s: %s %s",
            self._flow,
            self._step,
            message,
            fields or "",
            extra={"run_id": str(self._run_id)},
        )

    async def state_list(self) -> list[str]:
        async with self._database.connection() as conn:
            rows = await (
                await conn.execute(QUERIES["state_keys"], {"run_id": self._run_id})
            ).fetchall()
        return [row["key"] for row in rows]

    async def flow_start(self, flow: str, input: Any, options: dict[str, Any]) -> str:
        definition = self._flows.get(flow)
        if definition is None:
            raise FlowNotFoundError(f"unknown flow {flow!r}")
        data = as_json(input, f"the input of flow {flow!r}")
        start_options = StartOptions.from_params(options, parent_run_id=self._run_id)
        async with self._database.transaction() as conn:
            started = await start_run(conn, definition, data, start_options)
        return str(started.run_id)

    async def flow_running(self, flow: str | None, exclude_run_ids: list[str]) -> list[Any]:
        excluded = [self._run_id, *(_run_uuid(i) for i in exclude_run_ids)]
        params = {
            "flow": flow or self._flow,
            "excluded": excluded,
            "limit": MAX_RUNNING_RUNS,
        }
        async with self._database.connection() as conn:
            rows = await (await conn.execute(QUERIES["running_runs"], params)).fetchall()
        return [row["run"] for row in rows]

    async def flow_stats(self, flow: str | None) -> dict[str, Any] | None:
        async with self._database.connection() as conn:
            row = await (
                await conn.execute(QUERIES["flow_stats_of"], {"flow": flow or self._flow})
            ).fetchone()
        return None if row is None else dict(row["stats"])

    async def flow_cancel(self, run_id: str | None) -> bool:
        """Cancel a run (this one by default); False if it is unknown or already over."""
        target = self._run_id if run_id is None else _run_uuid(run_id)
        by = f"step {self._flow}/{self._step} of run {self._run_id}"
        try:
            async with self._database.transaction() as conn:
                await cancel_run(conn, target, by=by, reason="canceled by a step")
        except (RunNotFoundError, RunStateError):
            return False
        return True

    async def flow_is_running(
        self, flow: str | None, run_id: str | None, exclude_run_ids: list[str]
    ) -> bool:
        params: dict[str, Any]
        async with self._database.connection() as conn:
            if run_id is not None:
                query, params = QUERIES["run_is_running"], {"run_id": _run_uuid(run_id)}
            else:
                excluded = [self._run_id, *(_run_uuid(i) for i in exclude_run_ids)]
                query = QUERIES["flow_has_running_runs"]
                params = {"flow": flow or self._flow, "excluded": excluded}
            row = await (await conn.execute(query, params)).fetchone()
        return bool(row and row["running"])

    async def publish_mqtt(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._require_actions().publish_mqtt(params, self._recorder(PUBLISH))

    async def publish_amqp(self, params: dict[str, Any]) -> dict[str, Any]:
        actions = self._require_actions()
        self._amqp_publishes += 1
        return await actions.publish_amqp(
            params, self._actor(), self._amqp_publishes, self._recorder(PUBLISH)
        )

    async def http_request(self, params: dict[str, Any]) -> dict[str, Any]:
        actions = self._require_actions()
        return await actions.http_request(params, self._actor(), self._recorder(HTTP))

    def _require_actions(self) -> StepActions:
        if self._actions is None:
            raise ValueError("actions (ctx.publish, ctx.http) are not available here")
        return self._actions

    def _actor(self) -> Actor:
        key = f"{self._run_id}:{self._step}"
        return Actor(
            run_id=str(self._run_id),
            flow=self._flow,
            step=self._step,
            attempt=self._attempt,
            idempotency_key=key if self._hook is None else f"{key}:{self._hook}",
            declared_env=self._env,
        )

    def _recorder(self, kind: str) -> Callable[[dict[str, Any]], None]:
        """Appends an action's event to the attempt's, recorded with its outcome."""

        def record(data: dict[str, Any]) -> None:
            if self._hook is not None:
                data = {**data, "hook": self._hook}
            self._record.logs.append(
                NewEvent(self._run_id, kind, as_loose_json(data), self._step, self._attempt)
            )

        return record

    def heartbeat(self) -> None:
        """Liveness of an in-process step is the queue job's own heartbeat."""

    def progress(self, value: float, message: str | None) -> None:
        data = {"value": value, "message": message}
        self._record.logs.append(
            NewEvent(self._run_id, STEP_PROGRESS, as_loose_json(data), self._step, self._attempt)
        )


def _run_uuid(run_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(run_id)
    except ValueError:
        raise ValueError(f"{run_id!r} is not a run id") from None


def check_declared_emit(step: str, emits: tuple[str, ...], name: str) -> None:
    """A step emits only what it declares (`emits=`): anything else is refused, to its code."""
    if name not in emits:
        declared = ", ".join(emits) or "nothing"
        raise ValueError(f"step {step!r} emits {name!r} but declares emits=[{declared}]")


async def run_in_process(
    catalog: FunctionCatalog,
    step: StepDefinition,
    backend: ContextBackend,
    *,
    run_id: str,
    attempt: int,
    max_attempts: int,
    input: Any,
    awaited: Awaited | None = None,
    hook: HookCall | None = None,
    cancellation: Cancellation | None = None,
    traceparent: str | None = None,
) -> Any:
    """Run `step`'s handler (or with `hook`, that hook function of its file) in this process,
    under the step's timeout; a request on `cancellation` interrupts it."""
    ctx = RunContext(
        backend,
        run_id=run_id,
        flow_name=step.flow,
        step_name=step.name,
        attempt=attempt,
        max_attempts=max_attempts,
        idempotency_key=None if hook is None else f"{run_id}:{step.name}:{hook.kind}",
        awaited=awaited,
        hook=None if hook is None else hook.kind,
        traceparent=traceparent,
    )
    handler = catalog.handler(step, None if hook is None else hook.function)
    timeout = asyncio.timeout(step.timeout) if step.timeout else contextlib.nullcontext()
    try:
        async with timeout:
            with cancellation or Cancellation():  # a cancel interrupts the handler's task
                return await handler(input, ctx)
    except TimeoutError as exc:
        if not step.timeout:
            raise
        raise TimeoutError(f"step {step.name!r} timed out after {step.timeout:g}s") from exc
