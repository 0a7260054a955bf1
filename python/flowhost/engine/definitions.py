"""Flow definitions assembled from discovered steps, and the rules that make a flow valid.

Pure domain code: no I/O. A problem in one flow (two entry steps, a subscription nobody emits, a
cycle) rejects that flow with the file and line of the step at fault; the other flows still load.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from flowhost.cron import CronSchedule
from flowhost.triggers.declarations import StepTriggers, TriggerSpec
from flowhost_worker import Backoff

AWAIT_TYPES = ("time", "event", "webhook", "schedule")
TIMEOUT_ACTIONS = ("fail", "continue", "retry")
AWAIT_POSITIONS = ("before", "after")
# An event or webhook await with no timeout of its own gives up after a day (as the seed did);
# time and schedule awaits resolve by themselves and have no default timeout.
DEFAULT_AWAIT_TIMEOUT = {"event": 86400.0, "webhook": 86400.0}
HOOK_KINDS = ("register", "resolve", "timeout")
# The field each await type cannot do without: (attribute, canonical config key).
REQUIRED_AWAIT_FIELD = {
    "time": ("delay", "delayMs"),
    "event": ("event", "event"),
    "schedule": ("cron", "cron"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class AwaitDefinition:
    """What a step waits for before it runs (`await_before`) or before its emits count
    (`await_after`). Parsed from the canonical config both SDKs write (docs/protocol.md):
    `{type, delayMs, event, match, method, schema, cron, timezone, timeoutMs, timeoutAction,
    attempts, hooks: {register, resolve, timeout}}`, times in milliseconds."""

    type: str  # one of AWAIT_TYPES
    # time: seconds from registration until it resolves.
    delay: float | None = None
    # event: the event name, and payload fields that must equal values taken from the await's
    # subject (the step's input before it runs, its result after): field -> JSON Pointer.
    event: str | None = None
    match: Mapping[str, str] | None = None
    # webhook: the HTTP method the resolve URL accepts, and a JSON Schema for the body.
    method: str = "POST"
    schema: Mapping[str, Any] | None = None
    # schedule: resolves at the next fire time of `cron` in `timezone`.
    cron: str | None = None
    timezone: str = "UTC"
    # Seconds until the await times out (None: never), and what happens then.
    timeout: float | None = None
    timeout_action: str = "fail"
    # With timeout_action "retry": how many times the await is registered in all.
    attempts: int = 3
    # Functions of the step's file run on register / resolve / timeout (None: no hook).
    on_register: str | None = None
    on_resolve: str | None = None
    on_timeout: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> AwaitDefinition | None:
        if config is None:
            return None
        kind = config["type"]
        hooks = config.get("hooks") or {}
        timeout_ms = config.get("timeoutMs")
        delay_ms = config.get("delayMs")
        return cls(
            type=kind,
            delay=None if delay_ms is None else delay_ms / 1000,
            event=config.get("event"),
            match=config.get("match"),
            method=config.get("method") or "POST",
            schema=config.get("schema"),
            cron=config.get("cron"),
            timezone=config.get("timezone") or "UTC",
            timeout=DEFAULT_AWAIT_TIMEOUT.get(kind) if timeout_ms is None else timeout_ms / 1000,
            timeout_action=config.get("timeoutAction") or "fail",
            attempts=int(config.get("attempts") or 3),
            on_register=hooks.get("register"),
            on_resolve=hooks.get("resolve"),
            on_timeout=hooks.get("timeout"),
        )

    def to_config(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "delayMs": None if self.delay is None else round(self.delay * 1000),
            "event": self.event,
            "match": None if self.match is None else dict(self.match),
            "method": self.method,
            "schema": None if self.schema is None else dict(self.schema),
            "cron": self.cron,
            "timezone": self.timezone,
            "timeoutMs": None if self.timeout is None else round(self.timeout * 1000),
            "timeoutAction": self.timeout_action,
            "attempts": self.attempts,
            "hooks": self.hooks,
        }

    @property
    def hooks(self) -> dict[str, str | None]:
        """Hook kind -> the name of the function of the step's file it runs (None: no hook)."""
        return {
            "register": self.on_register,
            "resolve": self.on_resolve,
            "timeout": self.on_timeout,
        }

    def problems(self) -> list[str]:
        """What makes this await unusable, in words (empty when it is fine). The SDKs check the
        shape when a file is loaded; the cron expression and time zone are checked here."""
        found = []
        if self.type not in AWAIT_TYPES:
            found.append(f"its type {self.type!r} is none of {', '.join(AWAIT_TYPES)}")
            return found
        required = REQUIRED_AWAIT_FIELD.get(self.type)
        if required is not None and getattr(self, required[0]) is None:
            article = "an" if self.type == "event" else "a"
            found.append(f"{article} {self.type} await needs {required[1]!r}")
        if self.timeout_action not in TIMEOUT_ACTIONS:
            found.append(
                f"its timeoutAction {self.timeout_action!r} is none of {', '.join(TIMEOUT_ACTIONS)}"
            )
        if self.type == "schedule" and self.cron is not None:
            try:
                CronSchedule(self.cron, tz=self.timezone)
            except ValueError as exc:  # CronSyntaxError, or an unknown time zone
                found.append(str(exc))
        return found


@dataclasses.dataclass(frozen=True, slots=True)
class StepDefinition:
    flow: str
    name: str
    entry: bool
    subscribes: tuple[str, ...]
    emits: tuple[str, ...]
    attempts: int
    backoff: Backoff
    timeout: float | None
    file: str
    line: int
    function: str
    runtime: str = "python"
    # How the step runs (see flowhost.workers): in a child process unless a trusted Python
    # function opts into the host's own process.
    isolation: str = "process"
    reuse: int = 1
    preload: tuple[str, ...] = ()
    memory_mb: int | None = None
    cpu_seconds: float | None = None
    # Attempts of this step queued or running at once, across every host (flow control).
    concurrency: int | None = None
    env: tuple[str, ...] = ()
    # Flow control of the whole flow, declared on its entry step (docs/flow-control.md): runs
    # live at once, a JSON Pointer into the input naming the run's concurrency key, runs per
    # key at once, and the runs' default priority.
    max_runs: int | None = None
    concurrency_key: str | None = None
    key_concurrency: int | None = None
    priority: int | None = None
    # The interpreter that described (and so runs) a Python function; None for Node.
    interpreter: str | None = None
    await_before: AwaitDefinition | None = None
    await_after: AwaitDefinition | None = None
    # Hook names of the awaits that the describer found no function for in the step's file
    # (Python: no async function; Node: no exported function). Not part of the declaration.
    missing_hooks: frozenset[str] = frozenset()
    # The triggers an entry step subscribes its flow to, and those it declares. How runs start,
    # not how they run: not part of the definition hash (flowhost.triggers syncs them).
    triggers: StepTriggers | None = None

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def config(self) -> dict[str, Any]:
        """The declaration alone (no file or line): what the definition hash covers."""
        return {
            "name": self.name,
            "entry": self.entry,
            "subscribes": list(self.subscribes),
            "emits": list(self.emits),
            "attempts": self.attempts,
            "backoff": self.backoff.to_dict(),
            "timeout": self.timeout,
            "runtime": self.runtime,
            "isolation": self.isolation,
            "reuse": self.reuse,
            "preload": list(self.preload),
            "memory_mb": self.memory_mb,
            "cpu_seconds": self.cpu_seconds,
            "concurrency": self.concurrency,
            "maxRuns": self.max_runs,
            "concurrencyKey": self.concurrency_key,
            "keyConcurrency": self.key_concurrency,
            "priority": self.priority,
            "env": list(self.env),
            "awaitBefore": None if self.await_before is None else self.await_before.to_config(),
            "awaitAfter": None if self.await_after is None else self.await_after.to_config(),
        }

    @classmethod
    def from_description(
        cls, entry: Mapping[str, Any], *, runtime: str = "python", interpreter: str | None = None
    ) -> StepDefinition:
        """Build from one `steps[]` item of a describer's output (either SDK)."""
        config = entry["config"]
        backoff = config["backoff"]
        timeout_ms = config.get("timeoutMs")
        cpu_ms = config.get("cpuMs")
        return cls(
            flow=config["flow"],
            name=config["name"],
            entry=bool(config["entry"]),
            subscribes=tuple(config["subscribes"]),
            emits=tuple(config["emits"]),
            attempts=int(config["attempts"]),
            backoff=Backoff(
                backoff["type"], backoff["delayMs"] / 1000, backoff["maxDelayMs"] / 1000
            ),
            timeout=None if timeout_ms is None else timeout_ms / 1000,
            file=entry["file"],
            line=int(entry["line"]),
            function=entry["function"],
            runtime=runtime,
            isolation=config.get("isolation", "process"),
            reuse=int(config.get("reuse", 1)),
            preload=tuple(config.get("preload", ())),
            memory_mb=config.get("memoryMb"),
            cpu_seconds=None if cpu_ms is None else cpu_ms / 1000,
            concurrency=config.get("concurrency"),
            max_runs=config.get("maxRuns"),
            concurrency_key=config.get("concurrencyKey"),
            key_concurrency=config.get("keyConcurrency"),
            priority=config.get("priority"),
            env=tuple(config.get("env", ())),
            interpreter=interpreter if runtime == "python" else None,
            await_before=AwaitDefinition.from_config(config.get("awaitBefore")),
            await_after=AwaitDefinition.from_config(config.get("awaitAfter")),
            missing_hooks=frozenset(
                name for name, found in (entry.get("hooks") or {}).items() if not found
            ),
            triggers=StepTriggers.from_config(config.get("triggers")),
        )

    @classmethod
    def from_config(cls, flow: str, config: Mapping[str, Any]) -> StepDefinition:
        """Rebuild from `config()` (a flow definition hosts registered), without a file: what
        starting a run of a flow this process does not serve needs."""
        backoff = config["backoff"]
        return cls(
            flow=flow,
            name=config["name"],
            entry=bool(config["entry"]),
            subscribes=tuple(config["subscribes"]),
            emits=tuple(config["emits"]),
            attempts=int(config["attempts"]),
            backoff=Backoff(
                backoff["type"], backoff["delayMs"] / 1000, backoff["maxDelayMs"] / 1000
            ),
            timeout=config["timeout"],
            file="",
            line=0,
            function="",
            runtime=config["runtime"],
            isolation=config["isolation"],
            reuse=int(config["reuse"]),
            preload=tuple(config["preload"]),
            memory_mb=config["memory_mb"],
            cpu_seconds=config["cpu_seconds"],
            concurrency=config["concurrency"],
            max_runs=config["maxRuns"],
            concurrency_key=config["concurrencyKey"],
            key_concurrency=config["keyConcurrency"],
            priority=config["priority"],
            env=tuple(config["env"]),
            await_before=AwaitDefinition.from_config(config["awaitBefore"]),
            await_after=AwaitDefinition.from_config(config["awaitAfter"]),
        )

    def awaits(self) -> dict[str, AwaitDefinition]:
        """Position ("before", "after") -> the await declared there."""
        declared = {"before": self.await_before, "after": self.await_after}
        return {position: found for position, found in declared.items() if found is not None}

    def await_problems(self) -> list[str]:
        """Why this step's awaits cannot work: a bad cron expression or time zone, a field the
        type needs, a hook name the step's file has no function for."""
        found = []
        python = self.runtime == "python"
        function_kind = "async function" if python else "exported function"
        for position, declared in self.awaits().items():
            option = f"await_{position}" if python else f"await{position.title()}"
            where = f"step {self.name!r}: {option}"
            found += [f"{where}: {problem}" for problem in declared.problems()]
            for kind, name in declared.hooks.items():
                if name is not None and name in self.missing_hooks:
                    found.append(
                        f"{where}: the {kind} hook {name!r} is not an {function_kind} of "
                        f"{self.file}"
                    )
        return found


@dataclasses.dataclass(frozen=True, slots=True)
class DefinitionProblem:
    file: str
    line: int
    message: str
    flow: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclasses.dataclass(frozen=True, slots=True)
class FlowLimits:
    """A flow's flow control, enforced in Postgres (flowhost.engine.scheduling)."""

    max_runs: int | None = None
    concurrency_key: str | None = None
    key_concurrency: int | None = None
    priority: int = 0
    step_limits: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def limits_runs(self) -> bool:
        """Whether starting a run may have to wait for a slot."""
        return self.max_runs is not None or self.key_concurrency is not None

    @property
    def controlled(self) -> bool:
        """Whether any limit applies to the flow's runs or steps."""
        return self.limits_runs or bool(self.step_limits)

    def to_json(self) -> dict[str, Any]:
        """What the SQL of flow control reads (`flowhost.flow_controls`)."""
        return {
            "max_runs": self.max_runs,
            "key_concurrency": self.key_concurrency,
            "step_limits": dict(self.step_limits),
        }


# Not slotted: the derived views below are computed once per definition (cached_property),
# since every finished step consults them.
@dataclasses.dataclass(frozen=True)
class FlowDefinition:
    name: str
    entry: str
    steps: Mapping[str, StepDefinition]

    @functools.cached_property
    def hash(self) -> str:
        return definition_hash(self.steps.values())

    def step(self, name: str) -> StepDefinition:
        return self.steps[name]

    @functools.cached_property
    def subscriptions(self) -> Mapping[str, tuple[str, ...]]:
        """step name -> the events it waits for (empty for the entry step)."""
        return {name: tuple(step.subscribes) for name, step in self.steps.items()}

    @functools.cached_property
    def emits(self) -> Mapping[str, tuple[str, ...]]:
        """step name -> the events it may emit (`emits=`; a step can emit nothing else)."""
        return {name: tuple(step.emits) for name, step in self.steps.items()}

    @functools.cached_property
    def layers(self) -> tuple[tuple[str, ...], ...]:
        """Steps grouped by the events they subscribe to: the steps of a layer run in parallel
        (the entry step is a layer of its own)."""
        found: dict[frozenset[str], list[str]] = {}
        for name in sorted(self.steps):
            found.setdefault(frozenset(self.steps[name].subscribes), []).append(name)
        return tuple(tuple(layer) for layer in found.values())

    @functools.cached_property
    def leaves(self) -> frozenset[str]:
        """Steps whose events no step subscribes to: nothing in the flow comes after them."""
        awaited = {event for step in self.steps.values() for event in step.subscribes}
        return frozenset(n for n, step in self.steps.items() if awaited.isdisjoint(step.emits))

    @functools.cached_property
    def limits(self) -> FlowLimits:
        """The flow's flow control: what its entry step declares, and each step's limit."""
        entry = self.steps[self.entry]
        return FlowLimits(
            max_runs=entry.max_runs,
            concurrency_key=entry.concurrency_key,
            key_concurrency=entry.key_concurrency,
            priority=entry.priority or 0,
            step_limits={
                name: step.concurrency
                for name, step in sorted(self.steps.items())
                if step.concurrency is not None
            },
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entry": self.entry,
            "steps": [self.steps[name].config() for name in sorted(self.steps)],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowDefinition:
        """Rebuild from `to_json()`; raises ValueError when the result would not hash the same
        (a definition written by another flowhost version)."""
        try:
            steps = {
                config["name"]: StepDefinition.from_config(data["name"], config)
                for config in data["steps"]
            }
            flow = cls(name=data["name"], entry=data["entry"], steps=steps)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unreadable flow definition: {exc!r}") from exc
        return flow


def definition_hash(steps: Iterable[StepDefinition]) -> str:
    canonical = json.dumps(
        sorted((step.config() for step in steps), key=lambda c: c["name"]),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def build_flows(
    steps: Iterable[StepDefinition],
) -> tuple[dict[str, FlowDefinition], list[DefinitionProblem]]:
    """Group steps into flows and validate each flow; invalid flows are left out."""
    by_flow: dict[str, list[StepDefinition]] = {}
    for step in steps:
        by_flow.setdefault(step.flow, []).append(step)
    flows: dict[str, FlowDefinition] = {}
    problems: list[DefinitionProblem] = []
    for name in sorted(by_flow):
        flow, found = _build_flow(name, by_flow[name])
        problems.extend(found)
        if flow is not None:
            flows[name] = flow
    for name, problem in _trigger_conflicts(flows):
        problems.append(problem)
        flows.pop(name, None)
    return flows, problems


def _trigger_conflicts(
    flows: Mapping[str, FlowDefinition],
) -> list[tuple[str, DefinitionProblem]]:
    """A trigger defined by two flows' entry steps in two different ways: the later one (by
    file and line) is rejected with its flow."""
    first: dict[str, tuple[TriggerSpec, StepDefinition]] = {}
    conflicts = []
    entries = sorted(
        (flow.step(flow.entry) for flow in flows.values()), key=lambda s: (s.file, s.line)
    )
    for step in entries:
        for spec in step.triggers.define if step.triggers is not None else ():
            seen = first.setdefault(spec.name, (spec, step))
            if seen[0] != spec:
                message = (
                    f"flow {step.flow!r}: trigger {spec.name!r} is defined differently at "
                    f"{seen[1].location} (flow {seen[1].flow!r}); define it once, or the same way"
                )
                conflicts.append(
                    (step.flow, DefinitionProblem(step.file, step.line, message, flow=step.flow))
                )
    return conflicts


def _build_flow(
    name: str, steps: list[StepDefinition]
) -> tuple[FlowDefinition | None, list[DefinitionProblem]]:
    problems: list[DefinitionProblem] = []

    def problem(step: StepDefinition, message: str) -> None:
        problems.append(DefinitionProblem(step.file, step.line, message, flow=name))

    unique: dict[str, StepDefinition] = {}
    for step in steps:
        if step.name in unique:
            first = unique[step.name]
            problem(
                step,
                f"flow {name!r}: step {step.name!r} is defined twice (also at {first.location})",
            )
        else:
            unique[step.name] = step

    entries = [step for step in unique.values() if step.entry]
    if not entries:
        first = min(unique.values(), key=lambda s: (s.file, s.line))
        problem(first, f"flow {name!r} has no entry step (mark one step with entry=True)")
    for extra in entries[1:]:
        problem(
            extra,
            f"flow {name!r} has two entry steps: {entries[0].name!r} "
            f"({entries[0].location}) and {extra.name!r}",
        )

    for step in unique.values():
        for message in _step_problems(step):
            problem(step, f"flow {name!r}: {message}")

    emitted = {event for step in unique.values() for event in step.emits}
    for step in unique.values():
        for event in step.subscribes:
            if event not in emitted:
                problem(
                    step,
                    f"flow {name!r}: step {step.name!r} subscribes to {event!r}, "
                    "which no step of the flow emits",
                )

    if not problems:
        for step in _steps_in_cycles(unique):
            problem(
                step,
                f"flow {name!r}: step {step.name!r} waits on a cycle of steps and can never run",
            )

    if problems:
        return None, problems
    return FlowDefinition(name=name, entry=entries[0].name, steps=dict(unique)), []


def _step_problems(step: StepDefinition) -> list[str]:
    """What is wrong with one step on its own: its awaits, flow-level options on a step that
    is not the entry, its triggers."""
    found = step.await_problems()
    declared = [
        key
        for key, value in (
            ("max_runs", step.max_runs),
            ("concurrency_key", step.concurrency_key),
            ("key_concurrency", step.key_concurrency),
            ("priority", step.priority),
        )
        if value is not None
    ]
    if declared and not step.entry:
        found.append(
            f"{', '.join(declared)} apply to the whole flow and are declared on its entry step, "
            f"not on step {step.name!r}"
        )
    if step.triggers is not None:
        if not step.entry:
            found.append(
                f"step {step.name!r} declares triggers, which start the flow: declare them on "
                "its entry step"
            )
        found += [f"step {step.name!r}: {message}" for message in step.triggers.problems()]
    return found


def _steps_in_cycles(steps: Mapping[str, StepDefinition]) -> list[StepDefinition]:
    """Steps that no run can reach: run the AND-join from the entry until nothing changes."""
    reachable: set[str] = {s.name for s in steps.values() if s.entry}
    events = {e for name in reachable for e in steps[name].emits}
    changed = True
    while changed:
        changed = False
        for step in steps.values():
            if step.name not in reachable and set(step.subscribes) <= events:
                reachable.add(step.name)
                events.update(step.emits)
                changed = True
    return sorted(
        (s for s in steps.values() if s.name not in reachable), key=lambda s: (s.file, s.line)
    )
