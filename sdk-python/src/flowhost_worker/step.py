"""`@step`: declare a function as one step of a flow."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from flowhost_worker.awaits import Await, check_await
from flowhost_worker.config import Backoff, Isolation, StepConfig, names
from flowhost_worker.errors import StepConfigError
from flowhost_worker.triggers import parse_triggers

STEP_ATTRIBUTE = "__flowhost_step__"

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def step(
    *,
    flow: str,
    name: str | None = None,
    entry: bool = False,
    subscribes: Sequence[str] | str = (),
    emits: Sequence[str] | str = (),
    attempts: int = 1,
    backoff: float | Mapping[str, Any] | Backoff | None = None,
    timeout: float | None = None,
    isolation: Isolation = "process",
    reuse: int = 1,
    preload: Sequence[str] | str = (),
    memory: int | None = None,
    cpu: float | None = None,
    concurrency: int | None = None,
    max_runs: int | None = None,
    concurrency_key: str | None = None,
    key_concurrency: int | None = None,
    priority: int | None = None,
    env: Sequence[str] | str = (),
    await_before: Await | None = None,
    await_after: Await | None = None,
    triggers: Mapping[str, Any] | None = None,
) -> Callable[[Handler], Handler]:
    """Declare `async def handler(input, ctx)` as step `name` (default: the function's name).

    The entry step receives the run's input; any other step receives a mapping from each event
    it subscribes to, to that event's payload, once every one of them was emitted (AND-join).
    `attempts` counts the first try; `backoff` is seconds (fixed) or a `Backoff`.

    Process options: `isolation` ("process": a child process per attempt, or "inprocess": inside
    the host), `reuse` (jobs one child serves before it exits), `preload` (modules imported
    once, before children are forked), `memory` (MiB) and `cpu` (CPU seconds) limits per child,
    and `env` (names of the host's environment variables the step receives; children get no
    others).

    Flow control, across every host: `concurrency` (attempts of this step queued or running at
    once). On the entry step, for the whole flow: `max_runs` (runs live at once),
    `concurrency_key` (a JSON Pointer into the run's input, e.g. "/tenant") with
    `key_concurrency` (runs per key at once; waiting runs are served round-robin between keys),
    and `priority` (the runs' default priority, -1000 to 1000, higher first).

    Awaits (`Await.time/event/webhook/schedule`, see flowhost_worker.awaits): `await_before`
    holds the step back until it resolves (the step then finds the resolution in
    `ctx.awaited`); `await_after` holds back the steps its emits would start. Hook functions
    given to an await must be defined at the top level of this file.

    Triggers, on the entry step (flowhost_worker.triggers): `triggers={"subscribe": [...],
    "define": {...}}` subscribes the flow to triggers by name and declares triggers; the host
    registers them when it starts.
    """

    def register(handler: Handler) -> Handler:
        declared = handler  # iscoroutinefunction narrows `handler`; return it as given
        if not inspect.iscoroutinefunction(handler):
            raise StepConfigError(
                f"step {handler.__name__!r} must be an async function (async def)", field="handler"
            )
        parameters = inspect.signature(handler).parameters
        if len(parameters) != 2:
            raise StepConfigError(
                f"step {handler.__name__!r} must take exactly two parameters (input, ctx)",
                field="handler",
            )
        config = StepConfig(
            flow=flow,
            name=name if name is not None else handler.__name__,
            entry=entry,
            subscribes=names(subscribes, "subscribes"),
            emits=names(emits, "emits"),
            attempts=attempts,
            backoff=Backoff.parse(backoff),
            timeout=timeout,
            isolation=isolation,
            reuse=reuse,
            preload=names(preload, "preload"),
            memory=memory,
            cpu=cpu,
            concurrency=concurrency,
            max_runs=max_runs,
            concurrency_key=concurrency_key,
            key_concurrency=key_concurrency,
            priority=priority,
            env=names(env, "env"),
            await_before=check_await(await_before, "await_before"),
            await_after=check_await(await_after, "await_after"),
            triggers=parse_triggers(triggers),
        )
        for declared_await in (config.await_before, config.await_after):
            if declared_await is not None:
                _check_hooks_live_here(declared_await, handler)
        setattr(declared, STEP_ATTRIBUTE, config)
        return declared

    return register


def _check_hooks_live_here(declared: Await, handler: Callable[..., Any]) -> None:
    """The child runs a hook by its name in the step's file: a function object from another
    module would name something the file does not have."""
    for kind, name in declared.hooks.items():
        module = declared.hook_modules.get(name) if name is not None else None
        if module is not None and module != handler.__module__:
            raise StepConfigError(
                f"on_{kind}: {name!r} is defined in module {module!r}, not in the step's file "
                f"({handler.__module__!r}); hooks run by name from the step's own file",
                field=f"on_{kind}",
            )


def step_config(obj: object) -> StepConfig | None:
    """The StepConfig `@step` attached to `obj`, if any."""
    config = getattr(obj, STEP_ATTRIBUTE, None)
    return config if isinstance(config, StepConfig) else None
