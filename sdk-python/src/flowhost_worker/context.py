"""`RunContext`: what a step function gets as `ctx`.

The context is the same object whatever runs the step (inside the host, or in a child process
talking to the host); only its `ContextBackend` differs. A step written against this API never
changes when it moves between runtimes.
"""

from __future__ import annotations

import builtins
import logging
import math
from collections.abc import Iterable
from typing import Any, Protocol

from flowhost_worker.actions import (
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    NOTHING,
    Publisher,
    http_params,
)
from flowhost_worker.actions import require_text as _text
from flowhost_worker.awaits import Awaited
from flowhost_worker.errors import WorkerError

JSONValue = Any
MAX_STATE_KEY_LENGTH = 256


class ContextBackend(Protocol):
    """The host side of a context: in-process it talks to Postgres, in a child over ZeroMQ."""

    async def state_get(self, key: str) -> tuple[bool, JSONValue]: ...

    async def state_set(self, key: str, value: JSONValue) -> None: ...

    async def state_delete(self, key: str) -> bool: ...

    async def state_list(self) -> list[str]: ...

    async def emit(self, name: str, payload: JSONValue) -> None: ...

    async def flow_start(self, flow: str, input: JSONValue, options: dict[str, JSONValue]) -> str:
        """Start a run of `flow`; the new run's id (an existing one for a reused key).
        `options`: the `flow.start` params of docs/protocol.md that were given."""
        ...

    async def flow_running(
        self, flow: str | None, exclude_run_ids: list[str]
    ) -> list[dict[str, JSONValue]]:
        """Live runs of `flow` (None: this run's flow), this run and `exclude_run_ids` left out."""
        ...

    async def flow_stats(self, flow: str | None) -> dict[str, JSONValue] | None:
        """The statistics of `flow` (None: this run's flow), None if it never ran."""
        ...

    async def flow_cancel(self, run_id: str | None) -> bool:
        """Cancel run `run_id` (None: the calling run); False if it had already ended."""
        ...

    async def flow_is_running(
        self, flow: str | None, run_id: str | None, exclude_run_ids: list[str]
    ) -> bool: ...

    async def publish_mqtt(self, params: dict[str, JSONValue]) -> dict[str, JSONValue]:
        """Publish through the host's connection (`publish.mqtt` of docs/protocol.md)."""
        ...

    async def publish_amqp(self, params: dict[str, JSONValue]) -> dict[str, JSONValue]:
        """Publish through the host's connection (`publish.amqp` of docs/protocol.md)."""
        ...

    async def http_request(self, params: dict[str, JSONValue]) -> dict[str, JSONValue]:
        """An HTTP request made by the host (`http.request` of docs/protocol.md)."""
        ...

    def log(self, level: str, message: str, fields: dict[str, JSONValue]) -> None: ...

    def heartbeat(self) -> None: ...

    def progress(self, value: float, message: str | None) -> None: ...


class RunState:
    """Key/value state scoped to the run; every change is an event in the run's history."""

    __slots__ = ("_backend",)

    def __init__(self, backend: ContextBackend) -> None:
        self._backend = backend

    async def get(self, key: str, default: JSONValue = None) -> JSONValue:
        found, value = await self._backend.state_get(_key(key))
        return value if found else default

    async def set(self, key: str, value: JSONValue) -> None:
        await self._backend.state_set(_key(key), value)

    async def delete(self, key: str) -> bool:
        """Remove `key`; whether it was there."""
        return await self._backend.state_delete(_key(key))

    async def list(self) -> builtins.list[str]:  # `list` here would mean this method
        """The run's state keys, sorted."""
        return await self._backend.state_list()


class StepLogger:
    """Structured logs that become `log` events of the run: `ctx.logger.info("msg", k=v)`."""

    __slots__ = ("_backend",)

    def __init__(self, backend: ContextBackend) -> None:
        self._backend = backend

    def debug(self, message: str, **fields: JSONValue) -> None:
        self._backend.log("debug", str(message), fields)

    def info(self, message: str, **fields: JSONValue) -> None:
        self._backend.log("info", str(message), fields)

    def warning(self, message: str, **fields: JSONValue) -> None:
        self._backend.log("warning", str(message), fields)

    warn = warning

    def error(self, message: str, **fields: JSONValue) -> None:
        self._backend.log("error", str(message), fields)

    def log(self, level: str, message: str, **fields: JSONValue) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {sorted(LEVELS)}")
        self._backend.log(level, str(message), fields)


LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class FlowControl:
    """Start, cancel and look for runs of flows: `ctx.flow`."""

    __slots__ = ("_backend",)

    def __init__(self, backend: ContextBackend) -> None:
        self._backend = backend

    async def start(
        self,
        flow: str,
        input: JSONValue = None,
        *,
        idempotency_key: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        dedupe_key: str | None = None,
        dedupe_window: float | None = None,
        debounce_key: str | None = None,
        debounce_window: float | None = None,
    ) -> str:
        """Start a run of `flow` with `input`; its run id (the new run is linked to this one).

        - `idempotency_key`: at most one run starts per key, ever: a retried step gets the run
          its first attempt started.
        - `priority`: overrides the flow's priority (higher runs first, -1000 to 1000).
        - `delay`: seconds before the run starts (it is queued until then).
        - `dedupe_key` + `dedupe_window` (seconds): a start with the same key within the window
          after the first returns the first run.
        - `debounce_key` + `debounce_window` (seconds): the run starts once no start with the
          key came for the window; each start before then replaces its input.

        Options the host refuses (one start key at most, a key without its window, ...) raise
        ValueError."""
        _text(flow, "flow")
        options: dict[str, JSONValue] = {}
        for name, value in (
            ("idempotency_key", idempotency_key),
            ("dedupe_key", dedupe_key),
            ("debounce_key", debounce_key),
        ):
            if value is not None:
                _text(value, name)
                options[name] = value
        if priority is not None:
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise TypeError(f"priority must be an integer (got {priority!r})")
            options["priority"] = priority
        for name, seconds in (
            ("delay", delay),
            ("dedupe_window", dedupe_window),
            ("debounce_window", debounce_window),
        ):
            if seconds is not None:
                options[name] = _seconds(seconds, name)
        return await self._backend.flow_start(flow, input, options)

    async def running(
        self, flow: str | None = None, *, exclude: Iterable[str] = ()
    ) -> builtins.list[dict[str, JSONValue]]:
        """Live runs (queued, running or awaiting) of `flow` (default: this run's flow), oldest
        first, at most 1000, this run and `exclude` left out. Each is `{run_id, flow, status,
        started_at, step_count, completed_steps, parent_run_id}` (`started_at`: ISO 8601)."""
        if flow is not None:
            _text(flow, "flow")
        return await self._backend.flow_running(flow, _run_ids(exclude, "exclude"))

    async def stats(self, flow: str | None = None) -> dict[str, JSONValue] | None:
        """Statistics of `flow` (default: this run's flow): runs by status, durations, last run
        times; None if the flow never ran."""
        if flow is not None:
            _text(flow, "flow")
        return await self._backend.flow_stats(flow)

    async def cancel(self, run_id: str | None = None) -> bool:
        """Cancel run `run_id` (default: this run); False if it had already ended."""
        if run_id is not None:
            _text(run_id, "run_id")
        return await self._backend.flow_cancel(run_id)

    async def is_running(
        self,
        flow: str | None = None,
        *,
        run_id: str | None = None,
        exclude_run_ids: Iterable[str] = (),
    ) -> bool:
        """With `run_id`: is that run still going? Without: is any run of `flow` (default: this
        run's flow) going, other than this run and `exclude_run_ids`?"""
        if flow is not None:
            _text(flow, "flow")
        if run_id is not None:
            _text(run_id, "run_id")
        excluded = _run_ids(exclude_run_ids, "exclude_run_ids")
        return await self._backend.flow_is_running(flow, run_id, excluded)


class RunContext:
    """The `ctx` of a step: ids, `state`, `logger`, `flow`, `emit`, `heartbeat`, `progress`,
    `awaited` (how the step's await_before resolved), `publish` (MQTT and AMQP messages out)
    and `http` (an HTTP request made by the host).

    An await hook gets the same context with `hook` set to its kind ("register", "resolve",
    "timeout"); only `emit` is refused there: a hook runs beside the step, not as a step."""

    __slots__ = (
        "_backend",
        "_idempotency_key",
        "attempt",
        "awaited",
        "flow",
        "flow_name",
        "hook",
        "logger",
        "max_attempts",
        "publish",
        "run_id",
        "state",
        "step_name",
        "traceparent",
    )

    def __init__(
        self,
        backend: ContextBackend,
        *,
        run_id: str,
        flow_name: str,
        step_name: str,
        attempt: int,
        max_attempts: int,
        idempotency_key: str | None = None,
        awaited: Awaited | None = None,
        hook: str | None = None,
        traceparent: str | None = None,
    ) -> None:
        self._backend = backend
        self._idempotency_key = idempotency_key
        self.run_id = run_id
        self.flow_name = flow_name
        self.step_name = step_name
        self.attempt = attempt
        self.max_attempts = max_attempts
        # None unless the host passed how the step's await_before resolved.
        self.awaited = awaited
        self.hook = hook
        # The W3C `traceparent` of the host's span of this attempt (None when the host does
        # not trace): continue the trace from it (docs/metrics.md#tracing).
        self.traceparent = traceparent
        self.state = RunState(backend)
        self.logger = StepLogger(backend)
        self.flow = FlowControl(backend)
        self.publish = Publisher(backend)

    @property
    def idempotency_key(self) -> str:
        """The same on every attempt of this step in this run: use it as an idempotency key
        with external systems (e.g. Stripe's `Idempotency-Key`)."""
        if self._idempotency_key is not None:
            return self._idempotency_key
        return f"{self.run_id}:{self.step_name}"

    async def emit(self, name: str, payload: JSONValue = None) -> None:
        """Record event `name`; steps subscribed to it run once the step returns. A name the
        step does not declare in `emits` is a ValueError. In a child the host does not answer
        an emit: it is sent ahead of the step's result, and counts with it."""
        if self.hook is not None:
            raise WorkerError(
                f"ctx.emit is not available in an await hook (on_{self.hook} of step "
                f"{self.step_name!r}): hooks cannot emit events; emit from the step itself"
            )
        if not isinstance(name, str) or not name:
            raise ValueError("emit needs a non-empty event name")
        await self._backend.emit(name, payload)

    async def http(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        body: str | bytes | None = None,
        json: JSONValue = NOTHING,
        auth: dict[str, str] | None = None,
        timeout: float = DEFAULT_HTTP_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> dict[str, JSONValue]:
        """An HTTP request, made by the host and recorded in the run (secrets redacted).

        `url`, header and query values, auth fields and a string `body` may hold the
        placeholders `{run_id}`, `{flow}`, `{step}`, `{attempt}`, `{idempotency_key}`,
        `{timestamp}`, `{uuid}`, `{env:NAME}` (a variable the function declares in `env`) and
        `{secret:NAME}` (a variable the host lists in `http_secrets`): the host expands them,
        so a secret never reaches the step. `json=` data is sent as given. `auth`:
        `{"type": "basic", "username", "password"}`, `{"type": "bearer", "token"}` or
        `{"type": "api_key", "name", "value", "in": "header" | "query"}`.

        Returns `{"status", "ok", "headers", "body", "json"}` (`body` the text, `json` the
        parsed body when it is JSON, else None). A response status is not an error; a
        connection failure, a timeout or a body above `max_response_bytes` raises."""
        params = http_params(
            method,
            url,
            headers=headers,
            query=query,
            body=body,
            json_body=json,
            auth=auth,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
        )
        return await self._backend.http_request(params)

    def heartbeat(self) -> None:
        """Tell the host the step is alive and making progress (never blocks)."""
        self._backend.heartbeat()

    def progress(self, value: float, message: str | None = None) -> None:
        """Report how far the step got, from 0 to 1, with an optional message (never blocks)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"progress must be a number from 0 to 1 (got {value!r})")
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise ValueError(f"progress must be from 0 to 1 (got {value!r})")
        if message is not None and not isinstance(message, str):
            raise TypeError(f"progress message must be a string or None (got {message!r})")
        self._backend.progress(float(value), message)

    def __repr__(self) -> str:
        hook = "" if self.hook is None else f", hook={self.hook!r}"
        return (
            f"RunContext(run_id={self.run_id!r}, flow={self.flow_name!r}, "
            f"step={self.step_name!r}, attempt={self.attempt}{hook})"
        )


def _key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"state keys must be non-empty strings (got {key!r})")
    if len(key) > MAX_STATE_KEY_LENGTH:
        raise ValueError(
            f"state keys are at most {MAX_STATE_KEY_LENGTH} characters (got {len(key)})"
        )
    return key


def _run_ids(ids: Iterable[str], what: str) -> builtins.list[str]:
    if isinstance(ids, str):
        raise TypeError(f"{what} must be a collection of run ids, not one string")
    found = builtins.list(ids)
    for run_id in found:
        _text(run_id, f"{what} entries")
    return found


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be a number of seconds (got {value!r})")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number of seconds >= 0 (got {value!r})")
    return float(value)
