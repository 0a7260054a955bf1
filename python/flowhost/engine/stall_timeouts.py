"""How long a run of a flow may go without activity before it counts as stalled. Pure.

Computed from the definition, as the longest a healthy run could take: over the flow's
topological levels (the entry step is level 0; a step is one level below the deepest step
emitting an event it waits for), the sum of each level's longest step, a step counting its
timeout (5 minutes without one) plus the timeouts of its awaits; then a buffer of 10 %, at
least 5 minutes. Stall detection compares it with the time since the run's last activity, so
it errs long.
"""

from __future__ import annotations

from flowhost.engine.definitions import AwaitDefinition, FlowDefinition, StepDefinition

# A step with no timeout of its own counts this long.
DEFAULT_STEP_TIMEOUT = 300.0
BUFFER_SHARE = 0.1
MIN_BUFFER = 300.0
# For runs whose definition's stall timeout is not recorded.
DEFAULT_STALL_TIMEOUT = 1800.0


def stall_timeout(flow: FlowDefinition) -> float:
    """Seconds; see the module's docstring."""
    total = sum(max(_step_seconds(flow.step(name)) for name in level) for level in levels(flow))
    return total + max(BUFFER_SHARE * total, MIN_BUFFER)


def levels(flow: FlowDefinition) -> list[list[str]]:
    """The flow's steps by topological level, names sorted within a level."""
    emitters: dict[str, list[str]] = {}
    for step in flow.steps.values():
        for event in step.emits:
            emitters.setdefault(event, []).append(step.name)
    found: dict[str, int] = {}
    visiting: set[str] = set()

    def level(name: str) -> int:
        if name in found:
            return found[name]
        step = flow.step(name)
        if step.entry or name in visiting:
            # An emitter that waits on this step itself adds no level (valid flows reach every
            # step from the entry without it).
            return 0
        visiting.add(name)
        upstream = [level(e) for event in step.subscribes for e in emitters.get(event, ())]
        visiting.discard(name)
        found[name] = 1 + max(upstream, default=0)
        return found[name]

    by_level: dict[int, list[str]] = {}
    for name in sorted(flow.steps):
        by_level.setdefault(level(name), []).append(name)
    return [by_level[n] for n in sorted(by_level)]


def _step_seconds(step: StepDefinition) -> float:
    own = step.timeout if step.timeout else DEFAULT_STEP_TIMEOUT
    return own + _await_seconds(step.await_before) + _await_seconds(step.await_after)


def _await_seconds(definition: AwaitDefinition | None) -> float:
    """How long an await may take: its timeout, else a time await's delay; a schedule await
    without a timeout counts nothing (stall detection leaves runs waiting on an await alone)."""
    if definition is None:
        return 0.0
    if definition.timeout is not None:
        return definition.timeout
    if definition.type == "time" and definition.delay is not None:
        return definition.delay
    return 0.0
