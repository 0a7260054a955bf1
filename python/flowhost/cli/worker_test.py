"""`flowhost worker test FUNCTION --input JSON`: one step function, run once in the runtime it
declares, with no database.

The step runs as a host runs it (flowhost.workers.supervisor: a Python child forked from the
zygote of its interpreter, a Node child; an in-process function in this process), against the
SDK's in-memory backend: its logs are printed as they come, and what it emitted, wrote to its
state and started is shown after its result. Emits it does not declare are refused, as on a
host.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import click

from flowhost.cli import exit_codes, output
from flowhost.cli.common import (
    handle_errors,
    input_option,
    json_option,
    run_async,
    settings_of,
)
from flowhost.cli.logs import log_text
from flowhost.cli.running import parse_input
from flowhost.engine.catalog import FunctionCatalog
from flowhost.engine.definitions import StepDefinition
from flowhost.engine.inprocess import check_declared_emit, run_in_process
from flowhost.engine.orchestrator import describe_error
from flowhost.errors import InvalidInputError, StepNotFoundError
from flowhost.settings import Settings
from flowhost.store.json_data import as_json
from flowhost.workers.commands import RuntimeCommands
from flowhost.workers.failures import ChildFailure
from flowhost.workers.supervisor import Supervisor
from flowhost_worker.testing import MemoryBackend

LogListener = Callable[[str, str, dict[str, Any]], None]


class RecordingBackend(MemoryBackend):
    """The SDK's in-memory backend, refusing undeclared emits as a host does, keeping every
    state write in order, and telling `on_log` each log line as it comes."""

    def __init__(self, step: StepDefinition, state: dict[str, Any], on_log: LogListener) -> None:
        super().__init__(state)
        self._step = step
        self._on_log = on_log
        self.writes: list[dict[str, Any]] = []

    async def emit(self, name: str, payload: Any) -> None:
        check_declared_emit(self._step.name, self._step.emits, name)
        await super().emit(name, as_json(payload, f"payload of {name!r}"))

    async def state_set(self, key: str, value: Any) -> None:
        value = as_json(value, f"state value for {key!r}")
        self.writes.append({"op": "set", "key": key, "value": value})
        await super().state_set(key, value)

    async def state_delete(self, key: str) -> bool:
        deleted = await super().state_delete(key)
        self.writes.append({"op": "delete", "key": key, "deleted": deleted})
        return deleted

    def log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        super().log(level, message, fields)
        self._on_log(level, message, fields)

    def progress(self, value: float, message: str | None) -> None:
        super().progress(value, message)
        self._on_log("info", f"progress {value:.0%}{' ' + message if message else ''}", {})


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    step: StepDefinition
    backend: RecordingBackend
    result: Any
    error: dict[str, Any] | None
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        backend = self.backend
        return {
            "function": f"{self.step.flow}/{self.step.name}",
            "runtime": self.step.runtime,
            "isolation": self.step.isolation,
            "status": "failed" if self.error else "completed",
            "result": self.result,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
            "logs": [{"level": lv, "message": m, "fields": f} for lv, m, f in backend.logs],
            "emits": [{"name": name, "payload": payload} for name, payload in backend.emitted],
            "state_writes": backend.writes,
            "state": backend.state,
            "started_runs": [
                {"flow": flow, "input": data, "options": options}
                for flow, data, options in backend.started
            ],
        }


def find_step(catalog: FunctionCatalog, name: str) -> StepDefinition:
    """`FLOW/STEP`, or a step (or handler function) name that only one flow has."""
    if "/" in name:
        flow_name, _, step_name = name.partition("/")
        flow = catalog.flow(flow_name)
        if step_name not in flow.steps:
            raise StepNotFoundError(
                f"flow {flow_name!r} has no step {step_name!r} "
                f"(steps: {', '.join(sorted(flow.steps))})"
            )
        return flow.steps[step_name]
    steps = [step for flow in catalog.flows.values() for step in flow.steps.values()]
    matches = [step for step in steps if name in (step.name, step.function)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        named = ", ".join(sorted(f"{s.flow}/{s.name}" for s in matches))
        raise InvalidInputError(f"{name!r} names several steps ({named}): give FLOW/STEP")
    known = ", ".join(sorted(f"{s.flow}/{s.name}" for s in steps)) or "none"
    raise StepNotFoundError(f"no step or function {name!r} in the project (steps: {known})")


async def run_once(
    settings: Settings,
    function: str,
    data: Any,
    *,
    state: dict[str, Any],
    attempt: int,
    on_log: LogListener,
    on_step: Callable[[StepDefinition], None],
) -> Outcome:
    commands = RuntimeCommands.from_settings(settings)
    catalog = FunctionCatalog(settings.functions_path, commands)
    await catalog.reload()
    for problem in catalog.problems:
        click.echo(click.style("problem: ", fg="red") + str(problem), err=True)
    step = find_step(catalog, function)
    on_step(step)
    backend = RecordingBackend(step, state, on_log)
    call = {
        "run_id": str(uuid.uuid4()),
        "attempt": attempt,
        "max_attempts": max(step.attempts, attempt),
        "input": data,
    }
    began = time.perf_counter()
    result, error = None, None
    try:
        if step.isolation == "inprocess":
            result = await run_in_process(catalog, step, backend, **call)
        else:
            # One child, started for this call: no warm spares to start and stop.
            alone = dataclasses.replace(settings, warm_python=0, warm_node=0)
            async with Supervisor(alone, commands, host_id="worker-test") as supervisor:
                result = await supervisor.run(step, backend, **call)
    except ChildFailure as exc:
        retry = {} if exc.retry_delay is None else {"retry_delay": exc.retry_delay}
        error = exc.describe() | retry
    except Exception as exc:  # the function's own error, raised in this process
        error = describe_error(exc)
    return Outcome(step, backend, result, error, (time.perf_counter() - began) * 1000)


@click.group("worker")
def worker() -> None:
    """Step functions on their own, outside any run."""


@worker.command("test")
@click.argument("function")
@input_option("The step's")
@click.option(
    "--state", "state_text", metavar="JSON|@FILE",
    help="The run's state before the step: a JSON object (default {}).",
)  # fmt: skip
@click.option(
    "--attempt", type=click.IntRange(1), default=1, show_default=True,
    help="The attempt number the step sees (ctx.attempt).",
)  # fmt: skip
@json_option()
@click.pass_context
@handle_errors
def worker_test(
    ctx: click.Context,
    function: str,
    input_text: str | None,
    state_text: str | None,
    attempt: int,
    as_json: bool,
) -> None:
    """Run FUNCTION (FLOW/STEP, or a step or function name only one flow has) once, in the
    runtime it declares, with --input as its input: print its logs as they come, then its
    emits, state writes, the runs it would start and its result. No database is used.

    Exit 0 when the function returned, 1 when it raised, crashed or timed out."""
    data = parse_input(input_text)
    state = parse_input(state_text, option="--state")
    if not isinstance(state, dict):
        raise InvalidInputError("--state must be a JSON object")

    def on_log(level: str, message: str, fields: dict[str, Any]) -> None:
        if not as_json:
            click.echo("  " + log_text(level, message, fields))

    def on_step(step: StepDefinition) -> None:
        if not as_json:
            where = "this process" if step.isolation == "inprocess" else "a child process"
            click.echo(f"{step.flow}/{step.name}: {step.runtime}, in {where} ({step.location})")

    outcome = run_async(
        run_once(
            settings_of(ctx),
            function,
            data,
            state=state,
            attempt=attempt,
            on_log=on_log,
            on_step=on_step,
        )
    )
    if as_json:
        output.print_json(outcome.to_json())
    else:
        _print_outcome(outcome)
    if outcome.error is not None:
        sys.exit(exit_codes.RUN_FAILED)


def _print_outcome(outcome: Outcome) -> None:
    backend = outcome.backend
    for name, payload in backend.emitted:
        click.echo(f"emit {name} {output.compact(payload, 200)}")
    for write in backend.writes:
        if write["op"] == "set":
            click.echo(f"state set {write['key']} = {output.compact(write['value'], 200)}")
        else:
            click.echo(f"state delete {write['key']}")
    for flow, data, _options in backend.started:
        click.echo(f"start flow {flow} {output.compact(data, 200)} (not started: no database)")
    took = f"{outcome.duration_ms:.1f} ms"
    if outcome.error is None:
        click.echo(f"result: {output.compact(outcome.result, 400)}")
        click.echo(f"{output.status_text('completed')} in {took}")
        return
    error = outcome.error
    if error.get("stack"):
        click.echo(str(error["stack"]).rstrip(), err=True)
    delay = error.get("retry_delay")
    retry = "" if delay is None else f" (asks for a retry in {delay:g}s)"
    click.echo(f"error: {error['type']}: {error['message']}{retry}")
    click.echo(f"{output.status_text('failed')} in {took}")
