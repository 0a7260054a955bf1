"""One `execute` in the child: its parameters, its handler, and how a failure is reported."""

from __future__ import annotations

import dataclasses
import math
import re
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from flowhost_worker.awaits import HOOK_KINDS, Awaited
from flowhost_worker.errors import RetryRequested
from flowhost_worker.loader import load_module
from flowhost_worker.protocol import ErrorCode, ProtocolError

# A failure's text travels in one frame and lands in the run's history; a runaway traceback
# (RecursionError) keeps its head and tail.
MAX_TEXT = 64 * 1024


# W3C trace context: version-trace id-parent id-flags, lower-case hex.
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


@dataclasses.dataclass(frozen=True, slots=True)
class HookCall:
    """`execute`'s `hook`: run `function` of the step's file as the `kind` hook of its await,
    instead of the step's handler."""

    function: str
    kind: str

    def to_params(self) -> dict[str, str]:
        return {"function": self.function, "kind": self.kind}


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    run_id: str
    flow: str
    step: str
    attempt: int
    max_attempts: int
    idempotency_key: str
    file: Path
    handler: str
    input: Any
    timeout: float | None
    env: dict[str, str]
    last: bool
    awaited: Awaited | None = None
    hook: HookCall | None = None
    # The W3C trace context of the host's span of this attempt, when the host traces.
    traceparent: str | None = None
    # The event names the step declares. A host that sends them takes `emit` as a notification:
    # the child checks the name itself and does not wait for an answer. None: an older host,
    # which answers each `emit` request.
    emits: tuple[str, ...] | None = None

    @property
    def function(self) -> str:
        """The function this job runs: the hook's, else the step's handler."""
        return self.handler if self.hook is None else self.hook.function


def parse_execute(params: dict[str, Any]) -> Job:
    """The job `execute` asks for; `ProtocolError(-32602)` naming the bad key otherwise."""
    job = params.get("job")
    if not isinstance(job, dict):
        _refuse("job must be a map")
    run_id, step = _text(job, "run_id"), _text(job, "step")
    idempotency_key = (
        _text(job, "idempotency_key") if "idempotency_key" in job else f"{run_id}:{step}"
    )
    timeout = params.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        _refuse("timeout must be a positive number of seconds or null")
    env = params.get("env", {})
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and k and "=" not in k and isinstance(v, str) for k, v in env.items()
    ):
        _refuse("env must be a map from variable names to strings")
    last = params.get("last", True)
    if not isinstance(last, bool):
        _refuse("last must be a boolean")
    return Job(
        run_id=run_id,
        flow=_text(job, "flow"),
        step=step,
        attempt=_count(job, "attempt"),
        max_attempts=_count(job, "max_attempts"),
        idempotency_key=idempotency_key,
        file=Path(_text(job, "file")),
        handler=_text(job, "handler"),
        input=params.get("input"),
        timeout=None if timeout is None else float(timeout),
        env=env,
        last=last,
        awaited=_awaited(params.get("awaited")),
        hook=_hook(params.get("hook")),
        traceparent=_traceparent(params.get("traceparent")),
        emits=_emits(job.get("emits")),
    )


def _emits(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
        _refuse("job.emits must be a list of event names")
    return tuple(value)


def _traceparent(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not TRACEPARENT.match(value):
        _refuse("traceparent must be null or a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)")
    return value


def _awaited(value: Any) -> Awaited | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str) or not value["type"]:
        _refuse("awaited must be null or a map with a non-empty string type and data")
    return Awaited(value["type"], value.get("data"))


def _hook(value: Any) -> HookCall | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        _refuse("hook must be null or a map {function, kind}")
    function, kind = value.get("function"), value.get("kind")
    if not isinstance(function, str) or not function:
        _refuse("hook.function must be a non-empty string")
    if kind not in HOOK_KINDS:
        _refuse("hook.kind must be 'register', 'resolve' or 'timeout'")
    return HookCall(function, kind)


def _text(job: dict[str, Any], key: str) -> str:
    value = job.get(key)
    if not isinstance(value, str) or not value:
        _refuse(f"job.{key} must be a non-empty string")
    return value


def _count(job: dict[str, Any], key: str) -> int:
    value = job.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _refuse(f"job.{key} must be a positive integer")
    return value


class Handlers:
    """Loads handlers from function files, once per file for the life of the child."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._modules: dict[Path, ModuleType] = {}

    def load(self, job: Job) -> Callable[..., Any]:
        """The job's handler (or hook function); `ProtocolError(-32053)` with the failure's data
        otherwise."""
        name = job.function
        try:
            module = self._module(job.file)
            handler = getattr(module, name, None)
            if handler is None:
                raise AttributeError(f"{job.file} has no attribute {name!r}")
            if not callable(handler):
                raise TypeError(f"{job.file}: {name!r} is not a function")
        except Exception as exc:
            raise ProtocolError(
                ErrorCode.HANDLER_NOT_LOADABLE,
                f"cannot load {name!r} from {job.file}: {type(exc).__name__}: {exc}",
                data=failure_data(exc),
            ) from exc
        return handler  # type: ignore[no-any-return]  # callable() checked it

    def _module(self, file: Path) -> ModuleType:
        module = self._modules.get(file)
        if module is None:
            # Files outside the functions directory (the host's choice) import as top-level.
            root = self._root if file.is_relative_to(self._root) else file.parent
            module = self._modules[file] = load_module(root, file)
        return module


def failure_data(exc: BaseException) -> dict[str, Any]:
    """`{type, message, stack, retry_delay}`, the `data` of -32050 and -32053."""
    retry_delay = exc.delay if isinstance(exc, RetryRequested) else None
    message = (exc.reason or str(exc)) if isinstance(exc, RetryRequested) else str(exc)
    try:
        stack = "".join(traceback.format_exception(exc))
    except MemoryError:  # the failure may be the very lack of memory to describe it
        stack = ""
    return {
        "type": type(exc).__name__,
        "message": _clip(message),
        "stack": _clip(stack),
        "retry_delay": retry_delay,
    }


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    half = MAX_TEXT // 2
    return f"{text[:half]}\n… {len(text) - MAX_TEXT} characters left out …\n{text[-half:]}"


def _refuse(message: str) -> NoReturn:
    raise ProtocolError(ErrorCode.INVALID_PARAMS, f"execute: {message}")
