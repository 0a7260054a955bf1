"""Resolving, timing out and canceling awaits: each in one transaction, under the run's lock.

Whoever ends an await (an event published from outside or emitted by a step, a webhook call,
the sweeper when a time, schedule or timeout is due) locks the run first, re-checks that the run
is live and the await still waiting, and then writes the await's end and what follows from it
together:

- an await before a step: the step is queued with the resolution (`ctx.awaited`);
- an await after a step: the step is completed, its held emits count and the run moves on
  (`advance`), on the spot when this process has the flow's definition, else through a
  `ReleaseJob` that a host serving the flow runs.

A refusal (a webhook called twice, too late, with the wrong method or body) changes nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import jsonschema

from flowhost.db.database import Connection
from flowhost.engine import scheduling
from flowhost.engine.awaits import (
    Registration,
    hook_data,
    next_fire,
    publish_jobs,
    register_awaits,
)
from flowhost.engine.definitions import AwaitDefinition, FlowDefinition
from flowhost.engine.orchestrator import (
    MOVING,
    EmitListener,
    Emitted,
    advance,
    fail_blocked_run,
    settle_failed_step,
)
from flowhost.engine.transitions import Progress
from flowhost.errors import FlowhostError
from flowhost.queue.jobs import HookJob, QueueJob, ReleaseJob
from flowhost.queue.pgqueuer_queue import enqueue_jobs
from flowhost.store import awaits as store
from flowhost.store import runs
from flowhost.store.events import EMIT, STEP_FAILED, NewEvent
from flowhost.store.json_data import as_json
from flowhost.triggers.event_triggers import EventFires, EventTriggers

AWAIT_REGISTERED = "await.registered"
AWAIT_RESOLVED = "await.resolved"
AWAIT_TIMED_OUT = "await.timed_out"
AWAIT_HOOK_FAILED = "await.hook_failed"

# How many validation errors of a webhook body a 422 answer lists.
MAX_BODY_ERRORS = 20


class AwaitSchemaError(FlowhostError):
    """The await's JSON Schema is not a valid schema."""


class AwaitSettlement:
    """Ends awaits of runs this transaction locked, and writes what follows.

    Each await is written as soon as it is handled (so that two awaits of one run, handled in
    one transaction, each see the other's consequences); `finish()` enqueues the jobs and sets
    the runs' statuses (`awaiting` while one of their awaits waits)."""

    def __init__(
        self,
        conn: Connection,
        locked: Mapping[uuid.UUID, store.LockedRun],
        flows: Mapping[str, FlowDefinition] | None = None,
        *,
        on_emit: EmitListener | None = None,
    ) -> None:
        self._conn = conn
        self._runs = dict(locked)
        self._flows = flows or {}
        # Hears the held emits that count when an await after a step resolves (event triggers).
        self._on_emit = on_emit
        self._emitted: list[Emitted] = []
        self._jobs: list[QueueJob] = []
        # Steps made ready, by flow: they go through flow control (scheduling) in finish().
        self._ready: dict[str, list[scheduling.ReadyStep]] = {}
        self._published: list[tuple[str, Any]] = []
        self._touched: set[uuid.UUID] = set()

    def live(self, run_id: uuid.UUID) -> bool:
        run = self._runs.get(run_id)
        return run is not None and run.status in MOVING

    async def resolve(self, row: store.AwaitRow, data: Any) -> bool:
        """Resolve a waiting await with `data` (the webhook's body, the event's payload, the
        schedule's fire time, None for a time await); False if it no longer waits or its run is
        over."""
        if not self.live(row.run_id) or not await store.settle(
            self._conn, row.id, store.RESOLVED, data
        ):
            return False
        change = self._change(row.run_id)
        change.events.append(
            NewEvent(row.run_id, AWAIT_RESOLVED, {**row.describe(), "resolution": data}, row.step)
        )
        await self._hook(row, "resolve", data)
        registrations = await self._continue(row, data, change)
        await self._write(change, registrations)
        return True

    async def time_out(self, row: store.AwaitRow) -> None:
        """The await's timeout passed: fail, continue (resolve with null) or register again."""
        if not self.live(row.run_id):
            return
        action = str(row.config.get("timeoutAction") or "fail")
        attempts = int(row.config.get("attempts") or 1)
        change = self._change(row.run_id)
        timed_out = {**row.describe(), "action": action}
        if action == "retry" and row.registration < attempts:
            await self._register_again(row, change, timed_out)
            return
        if not await store.settle(self._conn, row.id, store.TIMED_OUT, None):
            return
        change.events.append(NewEvent(row.run_id, AWAIT_TIMED_OUT, timed_out, row.step))
        await self._hook(row, "timeout", None)
        registrations: list[Registration] = []
        if action == "continue":
            registrations = await self._continue(row, None, change)
        elif await self._fail(row, change):
            return
        await self._write(change, registrations)

    async def cancel(self, run_ids: Sequence[uuid.UUID]) -> None:
        """Awaits of runs that are over: nothing can resolve them any more."""
        await store.cancel_awaits_of_runs(self._conn, run_ids)

    async def release(self, run_id: uuid.UUID, step: str, flow: FlowDefinition) -> None:
        """Complete a step whose await after it resolved: its held emits count, the run moves on.
        (What a `ReleaseJob` does on a host serving the flow.)"""
        if not self.live(run_id):
            return
        row = await store.await_of_step(self._conn, run_id, step, "after")
        if row is None or row["status"] not in (store.RESOLVED, store.TIMED_OUT):
            return
        change = self._change(run_id)
        registrations = await self._release_held(run_id, step, row["held"] or {}, flow, change)
        await self._write(change, registrations)

    async def finish(self) -> None:
        """Enqueue what the ends of awaits made ready and set the runs' statuses."""
        if self._published:
            self._jobs += await (await publish_jobs(self._conn, self._published)).result()
        await enqueue_jobs(self._conn, self._jobs)
        for flow_name, steps in sorted(self._ready.items()):
            flow = self._flows.get(flow_name)
            if flow is not None:
                await scheduling.schedule_steps(self._conn, flow, steps)
            else:
                # A flow this host does not serve: its limits are unknown here, so its steps
                # are enqueued as they are (the hosts serving it gate what they start).
                await scheduling.enqueue_ungated(self._conn, flow_name, steps)
        await store.refresh_run_status(self._conn, sorted(self._touched))
        if self._on_emit is not None and self._emitted:
            await self._on_emit.emitted(self._conn, self._emitted)

    # -- what follows an await's end ------------------------------------------------------

    def _ready_step(self, run: store.LockedRun, run_id: uuid.UUID, step: str, attempt: int) -> None:
        ready = scheduling.ReadyStep(run_id, step, attempt, run.priority, run.concurrency_key)
        self._ready.setdefault(run.flow, []).append(ready)

    def _change(self, run_id: uuid.UUID) -> runs.Progress:
        run = self._runs[run_id]
        self._touched.add(run_id)
        return runs.Progress(run_id, run.status, dict(run.emitted), finishing=False)

    async def _write(
        self, change: runs.Progress, registrations: Sequence[Registration] = ()
    ) -> None:
        run = self._runs[change.run_id]
        queued = await runs.record_progress(self._conn, [change])
        for run_id, name in queued:
            self._ready_step(run, run_id, name, 1)
        self._jobs += await register_awaits(self._conn, registrations)
        self._runs[change.run_id] = dataclasses.replace(
            run, status=change.status, emitted=change.emitted
        )
        if change.status not in MOVING:
            # Nothing can resolve the awaits of a run that is over.
            await self.cancel([change.run_id])

    async def _continue(
        self, row: store.AwaitRow, data: Any, change: runs.Progress
    ) -> list[Registration]:
        """The step moves on: queued (before), or completed with its emits counted (after)."""
        run = self._runs[row.run_id]
        if row.position == "before":
            # The step's ctx.awaited.
            awaited = {"type": row.type, "data": data}
            attempt = await store.update_step(
                self._conn, "queue_awaited_step", row.run_id, row.step, awaited=awaited
            )
            if attempt is not None:
                self._ready_step(run, row.run_id, row.step, attempt)
            return []
        flow = self._flows.get(run.flow)
        if flow is None or row.step not in flow.steps:
            self._jobs.append(ReleaseJob(row.run_id, run.flow, row.step))
            return []
        return await self._release_held(row.run_id, row.step, row.held or {}, flow, change)

    async def _release_held(
        self,
        run_id: uuid.UUID,
        step: str,
        held: Mapping[str, Any],
        flow: FlowDefinition,
        change: runs.Progress,
    ) -> list[Registration]:
        attempt = await store.update_step(self._conn, "complete_awaited_step", run_id, step)
        if attempt is None:
            return []
        change.completed += 1
        for name, payload in held.get("emits") or []:
            change.emitted.setdefault(name, payload)
            self._published.append((name, payload))
            self._emitted.append(Emitted(run_id, step, name, payload))
            change.events.append(
                NewEvent(run_id, EMIT, {"name": name, "payload": payload}, step, attempt)
            )
        statuses = await store.step_statuses(self._conn, run_id)
        if change.status not in MOVING or change.finishing:
            return []
        registrations: list[Registration] = []
        outcome = advance(flow, change, statuses, held.get("result"), registrations)
        if outcome.failed:
            steps = await runs.step_rows(self._conn, run_id)
            await fail_blocked_run(self._conn, change, outcome, steps)
            return []
        return registrations

    async def _fail(self, row: store.AwaitRow, change: runs.Progress) -> bool:
        """Fail the step; True when that wrote `change` already."""
        timeout = row.config.get("timeoutMs")
        seconds = "" if timeout is None else f" after {timeout / 1000:g}s"
        registrations = f" ({row.registration} registrations)" if row.registration > 1 else ""
        error = {
            "type": "AwaitTimeout",
            "message": f"the {row.type} await {row.position} step {row.step!r} timed out"
            f"{seconds}{registrations}",
        }
        attempt = await store.update_step(
            self._conn, "fail_awaiting_step", row.run_id, row.step, error=error
        )
        if attempt is None:
            return False
        change.events.append(NewEvent(row.run_id, STEP_FAILED, {"error": error}, row.step, attempt))
        run = self._runs[row.run_id]
        flow = self._flows.get(run.flow)
        if flow is None or row.step not in flow.steps:
            # Without the flow's definition, the failure is taken to block the flow.
            await fail_blocked_run(
                self._conn,
                change,
                Progress([], [], False, failed_by=[row.step]),
                await runs.step_rows(self._conn, row.run_id),
                failed_step=row.step,
                error=error,
            )
            return False
        # As a step's last failed attempt: the run fails if that blocks the flow.
        await settle_failed_step(self._conn, flow, change, row.step, error, run=run)
        self._runs[row.run_id] = dataclasses.replace(
            run, status=change.status, emitted=change.emitted
        )
        return True

    async def _register_again(
        self, row: store.AwaitRow, change: runs.Progress, timed_out: dict[str, Any]
    ) -> None:
        definition = AwaitDefinition.from_config(row.config)
        assert definition is not None
        again = await store.register_again(
            self._conn,
            row.id,
            delay=(definition.delay or 0.0) if row.type == "time" else None,
            resolve_at=next_fire(definition) if row.type == "schedule" else None,
            timeout=definition.timeout,
        )
        if again is None:
            return
        change.events.append(NewEvent(row.run_id, AWAIT_TIMED_OUT, timed_out, row.step))
        renewed = dataclasses.replace(
            row,
            registration=again["registration"],
            resolve_at=again["resolve_at"],
            timeout_at=again["timeout_at"],
        )
        change.events.append(NewEvent(row.run_id, AWAIT_REGISTERED, renewed.describe(), row.step))
        await self._hook(row, "timeout", None)
        await self._hook(renewed, "register", None)
        await self._write(change)
        await self._wake_sweepers(again["due_at"])

    async def _wake_sweepers(self, due_at: datetime | None) -> None:
        if due_at is not None:
            await store.wake_sweepers(self._conn, due_at)

    async def _hook(self, row: store.AwaitRow, kind: str, resolution: Any) -> None:
        function = row.hook(kind)
        if function is None:
            return
        if row.position == "after":
            subject = (row.held or {}).get("result")
        else:
            subject = await store.step_input(self._conn, row.run_id, row.step)
        self._jobs.append(
            HookJob(
                run_id=row.run_id,
                flow=self._runs[row.run_id].flow,
                step=row.step,
                position=row.position,
                kind=kind,
                function=function,
                registration=row.registration,
                data=hook_data(kind, row.describe(), subject, resolution),
            )
        )


# -- events ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Published:
    """What publishing an event did: the awaits it resolved, the event triggers it fired (and
    those it matched but could not fire)."""

    resolved: int
    fires: EventFires = dataclasses.field(default_factory=EventFires)


async def publish(
    conn: Connection,
    name: str,
    payload: Any,
    *,
    flows: Mapping[str, FlowDefinition] | None = None,
    triggers: EventTriggers | None = None,
) -> Published:
    """Publish an event from outside a run (what `POST /api/events` does): resolves the waiting
    event awaits, of any run, of that name whose `match` values the payload's fields equal, and
    fires the event triggers matching its name (their runs start at depth 1). Call inside a
    transaction. `flows` (the definitions this process serves) lets an await after a step move
    its run on at once instead of through a job; `triggers`: this host's index of event
    triggers (by default one is loaded for the call)."""
    data = as_json(payload, f"the payload of event {name!r}")
    triggers = triggers or EventTriggers(lambda: flows or {})
    await triggers.ensure_loaded(conn)
    found = await (await store.find_event_awaits(conn, [(name, data)])).result()
    resolved = await resolve_event_awaits(
        conn,
        [(await_id, run_id) for _, await_id, run_id in found],
        data,
        flows=flows,
        on_emit=triggers,
    )
    return Published(resolved, await triggers.published(conn, name, data))


async def publish_event(
    conn: Connection,
    name: str,
    payload: Any,
    *,
    flows: Mapping[str, FlowDefinition] | None = None,
    triggers: EventTriggers | None = None,
) -> int:
    """`publish`, answering how many awaits it resolved."""
    published = await publish(conn, name, payload, flows=flows, triggers=triggers)
    return published.resolved


async def resolve_event_awaits(
    conn: Connection,
    awaits: Sequence[tuple[int, uuid.UUID]],
    payload: Any,
    *,
    flows: Mapping[str, FlowDefinition] | None = None,
    on_emit: EmitListener | None = None,
) -> int:
    """Resolve these event awaits (await id, run id) with `payload`, those still waiting in
    live runs; returns how many. The runs are locked in id order first."""
    if not awaits:
        return 0
    locked = await store.lock_runs(conn, [run_id for _, run_id in awaits])
    settlement = AwaitSettlement(conn, locked, flows, on_emit=on_emit)
    rows = await store.waiting_for_update(conn, [await_id for await_id, _ in awaits])
    resolved = 0
    for row in rows:
        if settlement.live(row.run_id):
            resolved += await settlement.resolve(row, payload)
    ended = sorted({row.run_id for row in rows if not settlement.live(row.run_id)})
    await settlement.cancel(ended)
    await settlement.finish()
    return resolved


# -- webhooks -------------------------------------------------------------------------------


class WebhookResult(enum.Enum):
    """How a call to a webhook await's URL ended; the HTTP status it is answered with."""

    RESOLVED = 202
    UNKNOWN = 404
    WRONG_METHOD = 405
    ALREADY_RESOLVED = 409
    GONE = 410
    INVALID_BODY = 422


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookOutcome:
    result: WebhookResult
    detail: str
    run_id: uuid.UUID | None = None
    step: str | None = None
    position: str | None = None
    # WRONG_METHOD: the one method the await accepts.
    allow: str | None = None
    # INVALID_BODY: where the body breaks the await's schema.
    errors: tuple[dict[str, str], ...] = ()


async def resolve_webhook(
    conn: Connection,
    token: str,
    method: str,
    body: bytes,
    query: Mapping[str, str] | None = None,
    *,
    flows: Mapping[str, FlowDefinition] | None = None,
    on_emit: EmitListener | None = None,
) -> WebhookOutcome:
    """A call to a webhook await's resolve URL. The await resolves with the JSON body (or, for
    a call without a body, the query parameters as an object), checked against the await's
    JSON Schema. Every refusal leaves everything as it was. Call inside a transaction."""
    found = await store.await_of_token(conn, token)
    if found is None:
        return WebhookOutcome(WebhookResult.UNKNOWN, "no await has this URL")
    locked = await store.lock_runs(conn, [found["run_id"]])
    current = await store.await_of_token_for_update(conn, token)
    if current is None:  # deleted with its run meanwhile
        return WebhookOutcome(WebhookResult.UNKNOWN, "no await has this URL")
    row, overdue = current

    def outcome(
        result: WebhookResult,
        detail: str,
        allow: str | None = None,
        errors: tuple[dict[str, str], ...] = (),
    ) -> WebhookOutcome:
        return WebhookOutcome(result, detail, row.run_id, row.step, row.position, allow, errors)

    run = locked.get(row.run_id)
    if row.status == store.RESOLVED:
        return outcome(WebhookResult.ALREADY_RESOLVED, "the await is resolved already")
    if row.status != store.WAITING or overdue:
        return outcome(WebhookResult.GONE, "the await timed out or was canceled")
    if run is None or run.status not in MOVING:
        return outcome(WebhookResult.GONE, f"the run is {run.status if run else 'gone'}")
    if row.method is None or method.upper() != row.method:
        return outcome(
            WebhookResult.WRONG_METHOD, f"this URL accepts {row.method} only", allow=row.method
        )
    problem, data, errors = read_body(body, query, row.config.get("schema"))
    if problem is not None:
        return outcome(WebhookResult.INVALID_BODY, problem, errors=errors)
    settlement = AwaitSettlement(conn, locked, flows, on_emit=on_emit)
    await settlement.resolve(row, data)
    await settlement.finish()
    return outcome(WebhookResult.RESOLVED, "the await is resolved")


def read_body(
    body: bytes, query: Mapping[str, str] | None, schema: Mapping[str, Any] | None
) -> tuple[str | None, Any, tuple[dict[str, str], ...]]:
    """(problem, data, schema errors): the data a webhook call resolves its await with, or
    why it cannot."""
    if body.strip():
        try:
            data = json.loads(body, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            return f"the body is not JSON: {exc}", None, ()
        try:
            data = as_json(data, "the body")
        except TypeError as exc:
            return str(exc), None, ()
    else:
        data = dict(query or {})
    if schema is None:
        return None, data, ()
    errors = schema_errors(schema, data)
    if errors:
        return "the body does not match the await's schema", None, errors
    return None, data, ()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def schema_errors(schema: Mapping[str, Any], data: Any) -> tuple[dict[str, str], ...]:
    """Where `data` breaks `schema` (JSON Pointer and message each), at most MAX_BODY_ERRORS."""
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        raise AwaitSchemaError(f"the await's schema is invalid: {exc.message}") from exc
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    found = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    return tuple(
        {"pointer": _pointer(error.absolute_path), "message": error.message}
        for error in found[:MAX_BODY_ERRORS]
    )


def _pointer(path: Sequence[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def due_resolution(row: store.AwaitRow) -> dict[str, Any] | None:
    """What a time await (nothing) or a schedule await (its fire time) resolves with."""
    if row.type != "schedule":
        return None
    return {"scheduled_at": (row.resolve_at or datetime.now(UTC)).isoformat()}
