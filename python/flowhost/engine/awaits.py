"""Registering awaits, in the transactions that make steps wait.

A step that becomes ready with `await_before` is written `awaiting` instead of `queued`; a step
with `await_after` that completes is written `awaiting` with its result and emits held in the
await row. Both register their await here, in the same transaction (DESIGN §6): the await row,
its `await.registered` event and its `register` hook job commit with the step's change.

Resolving and timing out awaits is `flowhost.engine.await_resolution`.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flowhost.cron import CronSchedule
from flowhost.db.database import Connection, Deferred
from flowhost.engine.definitions import AwaitDefinition
from flowhost.engine.json_pointer import resolve as resolve_pointer
from flowhost.queue.jobs import HookJob, PublishJob
from flowhost.store import awaits as store

# The path of a webhook await's resolve URL; `{public_url}{path}` is the URL.
WEBHOOK_PATH = "/hooks/await/"
# token_urlsafe(32): 43 characters, 256 random bits.
TOKEN_BYTES = 32


@dataclasses.dataclass(frozen=True, slots=True)
class Registration:
    """An await to register for a step of a run."""

    run_id: uuid.UUID
    flow: str
    step: str
    position: str  # "before" or "after"
    definition: AwaitDefinition
    # What `match` pointers and hooks look at: the step's input (before), its result (after).
    subject: Any
    # await_after: {"result", "emits": [[name, payload], ...], "attempt"}, held until resolved.
    held: dict[str, Any] | None = None


def resolve_url(public_url: str | None, token: str) -> str:
    """The URL that resolves a webhook await; just its path when no public URL is known."""
    base = (public_url or "").rstrip("/")
    return f"{base}{WEBHOOK_PATH}{token}"


def describe_await(row: Mapping[str, Any], public_url: str | None) -> dict[str, Any]:
    """An await row as `flowhost runs awaits` and the API show it: the webhook's resolve URL
    instead of its token (whoever may read it may resolve the await)."""
    token = row["token"]
    return {
        "step": row["step"],
        "position": row["position"],
        "type": row["type"],
        "status": row["status"],
        "registration": row["registration"],
        "event": row["event_name"],
        "method": row["method"],
        "resolve_at": row["resolve_at"],
        "timeout_at": row["timeout_at"],
        "created_at": row["created_at"],
        "resolved_at": row["resolved_at"],
        "url": None if token is None else resolve_url(public_url, token),
    }


def json_pointer(document: Any, pointer: str) -> tuple[bool, Any]:
    """Resolve an RFC 6901 JSON Pointer: (found, value). `""` is the whole document; an
    invalid pointer finds nothing."""
    try:
        return resolve_pointer(document, pointer)
    except ValueError:
        return False, None


def resolve_match(
    match: Mapping[str, str] | None, subject: Any
) -> tuple[dict[str, Any], list[str]]:
    """`match` (payload field -> JSON Pointer into the subject) with the pointers resolved: the
    values a payload must hold. Pointers that lead nowhere give null, and are listed."""
    values: dict[str, Any] = {}
    unresolved: list[str] = []
    for field, pointer in (match or {}).items():
        found, value = json_pointer(subject, pointer)
        values[field] = value
        if not found:
            unresolved.append(field)
    return values, unresolved


def next_fire(definition: AwaitDefinition, after: datetime | None = None) -> datetime | None:
    """A schedule await's resolve time: the next fire of its cron in its time zone."""
    if definition.cron is None:
        return None
    fires = CronSchedule(definition.cron, definition.timezone).next_after(
        after or datetime.now(UTC)
    )
    return fires[0] if fires else None


def _row(registration: Registration) -> dict[str, Any]:
    """The `register_awaits` row of a registration."""
    definition = registration.definition
    kind = definition.type
    match, unresolved = (
        resolve_match(definition.match, registration.subject) if kind == "event" else ({}, [])
    )
    resolve_at = next_fire(definition) if kind == "schedule" else None
    return {
        "run_id": str(registration.run_id),
        "step": registration.step,
        "position": registration.position,
        "type": kind,
        "config": definition.to_config(),
        "event_name": definition.event if kind == "event" else None,
        "match": match,
        "token": secrets.token_urlsafe(TOKEN_BYTES) if kind == "webhook" else None,
        "method": definition.method.upper() if kind == "webhook" else None,
        "delay": (definition.delay or 0.0) if kind == "time" else None,
        "resolve_at": None if resolve_at is None else resolve_at.isoformat(),
        "timeout": definition.timeout,
        "held": registration.held,
        "unresolved": unresolved or None,
    }


def hook_data(
    kind: str, description: Mapping[str, Any], subject: Any, resolution: Any
) -> dict[str, Any]:
    """A hook's input. A webhook await's URL is added when the hook runs (it is a secret, kept
    out of the queue)."""
    return {
        "kind": kind,
        "await": dict(description),
        "subject": subject,
        "resolution": resolution,
    }


def describe_registered(row: Mapping[str, Any], method: str | None) -> dict[str, Any]:
    """`AwaitRow.describe()` for a row `register_awaits` returned."""
    return {
        "type": row["type"],
        "position": row["position"],
        "registration": row["registration"],
        "timeout_at": None if row["timeout_at"] is None else row["timeout_at"].isoformat(),
        "resolve_at": None if row["resolve_at"] is None else row["resolve_at"].isoformat(),
        "method": method,
    }


async def register_awaits(conn: Connection, registrations: Sequence[Registration]) -> list[HookJob]:
    """Register awaits with their events; returns the `register` hook jobs to enqueue beside
    them (the caller enqueues them with its other jobs). Call inside a transaction."""
    if not registrations:
        return []
    rows = [_row(registration) for registration in registrations]
    inserted = await store.register(conn, rows)
    wanted = {
        (r.run_id, r.step, r.position): (r, row) for r, row in zip(registrations, rows, strict=True)
    }
    jobs: list[HookJob] = []
    for found in inserted:
        registration, row = wanted[(found["run_id"], found["step"], found["position"])]
        function = registration.definition.on_register
        if function is None:
            continue
        description = describe_registered(found, row["method"])
        jobs.append(
            HookJob(
                run_id=registration.run_id,
                flow=registration.flow,
                step=registration.step,
                position=registration.position,
                kind="register",
                function=function,
                registration=found["registration"],
                data=hook_data("register", description, registration.subject, None),
            )
        )
    return jobs


async def publish_jobs(
    conn: Connection, events: Sequence[tuple[str, Any]]
) -> Deferred[list[PublishJob]]:
    """Emits that now count, checked against waiting event awaits (an indexed lookup): one
    job per event that resolves some, run by any host in its own transaction. Looking up here
    rather than locking those runs keeps a step's end from waiting on other runs' locks.
    Read later (see `Deferred`), so that the lookup travels with other statements."""
    found = await store.find_event_awaits(conn, events)

    def jobs(matches: list[tuple[int, int, uuid.UUID]]) -> list[PublishJob]:
        by_event: dict[int, list[tuple[int, uuid.UUID]]] = defaultdict(list)
        for index, await_id, run_id in matches:
            by_event[index].append((await_id, run_id))
        return [
            PublishJob(events[index][0], events[index][1], tuple(resolved))
            for index, resolved in sorted(by_event.items())
        ]

    return found.then(jobs)
