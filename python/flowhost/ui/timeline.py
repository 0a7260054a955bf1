"""A run's events as the timeline of its page shows them: a category (for the filters), a
one-line summary, and the event's data for its details. Pure (no I/O)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from flowhost.engine import await_resolution
from flowhost.store import events

# Every event type a run's stream may send (the page's EventSource listens to each by name;
# `end` closes the stream).
RUN_EVENT_TYPES = tuple(
    sorted(
        {
            value
            for name, value in vars(events).items()
            if name.isupper()
            and isinstance(value, str)
            and (value in ("log", "emit") or "." in value)
        }
        | {
            await_resolution.AWAIT_REGISTERED,
            await_resolution.AWAIT_RESOLVED,
            await_resolution.AWAIT_TIMED_OUT,
            await_resolution.AWAIT_HOOK_FAILED,
        }
    )
)


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    id: int
    ts: datetime
    type: str
    step: str | None
    attempt: int | None
    category: str  # run | step | log | state | await | emit
    level: str | None  # a log's level
    summary: str
    data: dict[str, Any]


def _error(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message")
        return f"{kind}: {message}" if kind else str(message)
    return "" if error is None else str(error)


def _value(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _log(data: dict[str, Any]) -> str:
    fields = data.get("fields") or {}
    pairs = " ".join(f"{k}={_value(v, 60)}" for k, v in sorted(fields.items()))
    return f"{data.get('message', '')} {pairs}".strip()


def _duration(data: dict[str, Any]) -> str:
    ms = data.get("duration_ms")
    return f" in {ms:.0f} ms" if isinstance(ms, int | float) else ""


SUMMARIES: dict[str, Any] = {
    "flow.started": lambda d: "run started",
    "flow.completed": lambda d: "run completed",
    "flow.failed": lambda d: f"run failed {_error(d)}".strip(),
    "flow.canceled": lambda d: (
        f"run canceled{' by ' + str(d['by']) if d.get('by') else ''}"
        + (f": {d['reason']}" if d.get("reason") else "")
    ),
    "flow.stalled": lambda d: f"run stalled ({d.get('reason', 'no activity')})",
    "flow.retried": lambda d: "run retried",
    "flow.waiting": lambda d: f"run waits for a slot ({d.get('reason', '')})",
    "flow.admitted": lambda d: "run admitted",
    "flow.debounced": lambda d: "input replaced (debounced)",
    "flow.migrated": lambda d: f"moved to definition {d.get('to', '')}",
    "step.started": lambda d: "started",
    "step.completed": lambda d: f"completed{_duration(d)}",
    "step.retry": lambda d: f"failed, retry in {d.get('delay', '?')} s: {_error(d)}",
    "step.failed": lambda d: f"failed: {_error(d)}",
    "step.skipped": lambda d: "skipped (its events can no longer come)",
    "step.canceled": lambda d: "canceled",
    "step.stalled": lambda d: "stalled",
    "step.waiting": lambda d: f"waits for a slot ({d.get('reason', '')})",
    "step.admitted": lambda d: "admitted",
    "step.progress": lambda d: f"progress {_value(d.get('progress', d))}",
    "log": _log,
    "emit": lambda d: f"emitted {d.get('name', '')} {_value(d.get('payload'), 80)}".strip(),
    "state.set": lambda d: f"state {d.get('key', '')} = {_value(d.get('value'))}",
    "state.delete": lambda d: f"state {d.get('key', '')} deleted",
    "await.registered": lambda d: (
        f"waits ({d.get('position', '')}) for a {d.get('type', '')}"
        + (f" {d['event']}" if d.get("event") else "")
    ),
    "await.resolved": lambda d: f"await resolved {_value(d.get('resolution'), 80)}",
    "await.timed_out": lambda d: f"await timed out ({d.get('action', 'fail')})",
    "await.hook_failed": lambda d: f"{d.get('kind', '')} hook failed: {_error(d)}",
}


def category(kind: str) -> str:
    if kind.startswith("flow."):
        return "run"
    if kind in ("log", "emit"):
        return kind
    return kind.split(".", 1)[0]  # step, state, await


def row(event: events.Event) -> Row:
    data = event.data if isinstance(event.data, dict) else {"value": event.data}
    describe = SUMMARIES.get(event.type)
    try:
        summary = describe(data) if describe else _value(data)
    except (TypeError, ValueError, KeyError):
        summary = _value(data)
    return Row(
        id=event.id,
        ts=event.ts,
        type=event.type,
        step=event.step,
        attempt=event.attempt,
        category=category(event.type),
        level=str(data.get("level")) if event.type == "log" else None,
        summary=summary,
        data=data,
    )
