"""`RunContext`: what a step function gets as `ctx`.

The context is the same object whatever runs the step (inside the host, or in a child process
talking to the host); only its `ContextBackend` differs. A step written against this API never
changes when it moves between runtimes.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

JSONValue = Any
_MISSING: Any = object()


class ContextBackend(Protocol):
    """The host side of a context: in-process it talks to Postgres, in a child over ZeroMQ."""

    async def state_get(self, key: str) -> tuple[bool, JSONValue]: ...

    async def state_set(self, key: str, value: JSONValue) -> None: ...

    async def state_delete(self, key: str) -> None: ...

    async def emit(self, name: str, payload: JSONValue) -> None: ...

    def log(self, level: str, message: str, fields: dict[str, JSONValue]) -> None: ...


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

    async def delete(self, key: str) -> None:
        await self._backend.state_delete(_key(key))


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


class RunContext:
    """The `ctx` of a step: ids, `state`, `logger`, `emit`."""

    __slots__ = (
        "_backend",
        "attempt",
        "flow_name",
        "logger",
        "max_attempts",
        "run_id",
        "state",
        "step_name",
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
    ) -> None:
        self._backend = backend
        self.run_id = run_id
        self.flow_name = flow_name
        self.step_name = step_name
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.state = RunState(backend)
        self.logger = StepLogger(backend)

    @property
    def idempotency_key(self) -> str:
        """The same on every attempt of this step in this run: use it as an idempotency key
        with external systems (e.g. Stripe's `Idempotency-Key`)."""
        return f"{self.run_id}:{self.step_name}"

    async def emit(self, name: str, payload: JSONValue = None) -> None:
        """Record event `name`; steps subscribed to it run once the step returns."""
        if not isinstance(name, str) or not name:
            raise ValueError("emit needs a non-empty event name")
        await self._backend.emit(name, payload)

    def __repr__(self) -> str:
        return (
            f"RunContext(run_id={self.run_id!r}, flow={self.flow_name!r}, "
            f"step={self.step_name!r}, attempt={self.attempt})"
        )


def _key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError("state keys must be non-empty strings")
    return key
