"""A step's declaration: validated at import time, serialised to the canonical JSON shape.

The canonical shape is shared with the Node SDK (`normalizeConfig`) and is what the host reads
when it discovers functions: `{flow, name, entry, subscribes, emits, attempts,
backoff: {type, delayMs, maxDelayMs}, timeoutMs, isolation, reuse, preload, memoryMb, cpuMs,
concurrency, maxRuns, concurrencyKey, keyConcurrency, priority, env, awaitBefore,
awaitAfter, triggers}` (times in milliseconds on the wire, memory in MiB; each await `null` or
`Await.to_dict()`; triggers `null` or `Triggers.to_dict()`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from flowhost_worker.awaits import Await, check_await
from flowhost_worker.errors import StepConfigError
from flowhost_worker.names import NAME_PATTERN
from flowhost_worker.triggers import Triggers

MODULE_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BackoffKind = Literal["fixed", "exponential"]
Isolation = Literal["process", "inprocess"]
ISOLATIONS = ("process", "inprocess")
# Run priorities (higher first); the host's range (flowhost.engine.starting).
MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
# A JSON Pointer (RFC 6901): "" or "/token/token", `~` escaped as ~0 and `/` as ~1.
JSON_POINTER_PATTERN = re.compile(r"^(/([^~/]|~[01])*)*$")
# Declared on the entry step, for the whole flow (flow control).
FLOW_LEVEL_FIELDS = ("max_runs", "concurrency_key", "key_concurrency", "priority")


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt n+1: `delay` (fixed) or `delay * 2**(n-1)` capped at `max_delay`."""

    type: BackoffKind = "exponential"
    delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.type not in ("fixed", "exponential"):
            raise StepConfigError("backoff type must be 'fixed' or 'exponential'", field="backoff")
        for field in ("delay", "max_delay"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise StepConfigError(f"backoff {field} must be a number", field="backoff")
            if not math.isfinite(value) or value < 0:
                raise StepConfigError(f"backoff {field} must be >= 0 seconds", field="backoff")

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2 = the first retry)."""
        if self.type == "fixed":
            return self.delay
        return float(min(self.max_delay, self.delay * 2 ** max(0, attempt - 2)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "delayMs": round(self.delay * 1000),
            "maxDelayMs": round(self.max_delay * 1000),
        }

    @classmethod
    def parse(cls, value: float | Mapping[str, Any] | Backoff | None) -> Backoff:
        """Accept seconds (a fixed delay), a Backoff, or `{type, delay, max_delay}`."""
        if value is None:
            return cls()
        if isinstance(value, Backoff):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return cls(type="fixed", delay=float(value), max_delay=float(value))
        if isinstance(value, Mapping):
            unknown = set(value) - {"type", "delay", "max_delay"}
            if unknown:
                raise StepConfigError(f"unknown backoff keys: {sorted(unknown)}", field="backoff")
            return cls(**value)
        raise StepConfigError(
            "backoff must be seconds, a Backoff or a {type, delay, max_delay} mapping",
            field="backoff",
        )


@dataclasses.dataclass(frozen=True, slots=True)
class StepConfig:
    """What `@step(...)` declares about one step of one flow."""

    flow: str
    name: str
    entry: bool = False
    subscribes: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    attempts: int = 1
    backoff: Backoff = dataclasses.field(default_factory=Backoff)
    timeout: float | None = None
    # How the step runs: in its own child process (the default) or inside the host.
    isolation: Isolation = "process"
    reuse: int = 1  # jobs one child serves before it exits
    preload: tuple[str, ...] = ()  # modules a zygote imports before it forks the child
    memory: int | None = None  # MiB
    cpu: float | None = None  # CPU seconds per attempt
    concurrency: int | None = None  # attempts of this step queued or running at once, all hosts
    # Flow control of the whole flow, on its entry step only: runs live at once; a JSON Pointer
    # into the run's input naming its concurrency key, and runs per key at once; the runs'
    # default priority (higher first).
    max_runs: int | None = None
    concurrency_key: str | None = None
    key_concurrency: int | None = None
    priority: int | None = None
    env: tuple[str, ...] = ()  # names of the host's environment variables the step receives
    # What the step waits for before it runs, and before its emits count (flowhost_worker.awaits).
    await_before: Await | None = None
    await_after: Await | None = None
    # What starts the flow from outside, on its entry step only (flowhost_worker.triggers).
    triggers: Triggers | None = None

    def __post_init__(self) -> None:
        _check_name(self.flow, "flow")
        _check_name(self.name, "name")
        for event in (*self.subscribes, *self.emits):
            _check_name(event, "subscribes" if event in self.subscribes else "emits")
        if self.entry and self.subscribes:
            raise StepConfigError("an entry step cannot subscribe to events", field="subscribes")
        if not self.entry and not self.subscribes:
            raise StepConfigError(
                f"step {self.name!r} is not the entry step, so it must subscribe to at least one "
                "event (subscribes=[...])",
                field="subscribes",
            )
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise StepConfigError("attempts must be an integer", field="attempts")
        if self.attempts < 1:
            raise StepConfigError("attempts must be at least 1", field="attempts")
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not math.isfinite(self.timeout)
            or self.timeout <= 0
        ):
            raise StepConfigError("timeout must be a positive number of seconds", field="timeout")
        self._check_process_options()
        self._check_flow_control()
        check_await(self.await_before, "await_before")
        check_await(self.await_after, "await_after")
        if self.triggers is not None and not self.entry:
            raise StepConfigError(
                f"step {self.name!r} declares triggers, which start the flow: declare them on "
                "the flow's entry step",
                field="triggers",
            )

    def _check_process_options(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise StepConfigError(
                f"isolation must be 'process' or 'inprocess' (got {self.isolation!r})",
                field="isolation",
            )
        _check_positive_int(self.reuse, "reuse", "jobs per child")
        for module in self.preload:
            if not isinstance(module, str) or not MODULE_PATTERN.match(module):
                raise StepConfigError(
                    f"preload entries must be dotted module names like 'numpy' or 'pkg.sub' "
                    f"(got {module!r})",
                    field="preload",
                )
        if self.memory is not None:
            _check_positive_int(self.memory, "memory", "MiB")
        if self.cpu is not None and (
            isinstance(self.cpu, bool)
            or not isinstance(self.cpu, int | float)
            or not math.isfinite(self.cpu)
            or self.cpu <= 0
        ):
            raise StepConfigError("cpu must be a positive number of CPU seconds", field="cpu")
        for name in self.env:
            if not isinstance(name, str) or not ENV_NAME_PATTERN.match(name):
                raise StepConfigError(
                    f"env entries must be environment variable names (letters, digits and _, "
                    f"not starting with a digit; got {name!r})",
                    field="env",
                )

    def _check_flow_control(self) -> None:
        if self.concurrency is not None:
            _check_positive_int(self.concurrency, "concurrency", "attempts at once")
        declared = [name for name in FLOW_LEVEL_FIELDS if getattr(self, name) is not None]
        if declared and not self.entry:
            raise StepConfigError(
                f"{declared[0]} applies to the whole flow: declare it on the flow's entry step",
                field=declared[0],
            )
        if self.max_runs is not None:
            _check_positive_int(self.max_runs, "max_runs", "runs at once")
        if self.key_concurrency is not None:
            _check_positive_int(self.key_concurrency, "key_concurrency", "runs per key at once")
            if self.concurrency_key is None:
                raise StepConfigError(
                    "key_concurrency limits runs per concurrency key: set concurrency_key too",
                    field="key_concurrency",
                )
        if self.concurrency_key is not None:
            if not isinstance(self.concurrency_key, str) or not JSON_POINTER_PATTERN.match(
                self.concurrency_key
            ):
                raise StepConfigError(
                    "concurrency_key must be a JSON Pointer into the run's input, like '/tenant' "
                    f"(got {self.concurrency_key!r})",
                    field="concurrency_key",
                )
            if self.key_concurrency is None and self.max_runs is None:
                raise StepConfigError(
                    "concurrency_key needs key_concurrency (runs per key at once) or max_runs "
                    "(shared fairly between keys)",
                    field="concurrency_key",
                )
        if self.priority is not None and (
            isinstance(self.priority, bool)
            or not isinstance(self.priority, int)
            or not MIN_PRIORITY <= self.priority <= MAX_PRIORITY
        ):
            raise StepConfigError(
                f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY} "
                f"(got {self.priority!r})",
                field="priority",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "name": self.name,
            "entry": self.entry,
            "subscribes": list(self.subscribes),
            "emits": list(self.emits),
            "attempts": self.attempts,
            "backoff": self.backoff.to_dict(),
            "timeoutMs": None if self.timeout is None else round(self.timeout * 1000),
            "isolation": self.isolation,
            "reuse": self.reuse,
            "preload": list(self.preload),
            "memoryMb": self.memory,
            "cpuMs": None if self.cpu is None else round(self.cpu * 1000),
            "concurrency": self.concurrency,
            "maxRuns": self.max_runs,
            "concurrencyKey": self.concurrency_key,
            "keyConcurrency": self.key_concurrency,
            "priority": self.priority,
            "env": list(self.env),
            "awaitBefore": None if self.await_before is None else self.await_before.to_dict(),
            "awaitAfter": None if self.await_after is None else self.await_after.to_dict(),
            "triggers": None if self.triggers is None else self.triggers.to_dict(),
        }


def names(value: Sequence[str] | str, field: str) -> tuple[str, ...]:
    """Normalise `"a"` or `["a", "b"]` to a tuple without duplicates, in order."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise StepConfigError(f"{field} must be a string or a list of strings", field=field)
    return tuple(dict.fromkeys(value))


def _check_positive_int(value: object, field: str, unit: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StepConfigError(
            f"{field} must be a positive integer ({unit}; got {value!r})", field=field
        )


def _check_name(value: object, field: str) -> None:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise StepConfigError(
            f"{field} must be a non-empty name of letters, digits and _ . : - (got {value!r})",
            field=field,
        )
