"""What happens after a step finishes: which steps became ready, which never will. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flowhost._core import ready_steps
from flowhost.engine.definitions import FlowDefinition, StepDefinition

IN_FLIGHT = frozenset({"queued", "running"})


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    # Steps whose subscriptions are now all satisfied: schedule them.
    ready: list[str]
    # Steps that can never run because no step is left that could emit what they wait for.
    skipped: list[str]
    # Nothing is queued, running or ready: the run is over.
    finished: bool


def progress(
    flow: FlowDefinition, statuses: Mapping[str, str], emitted: Mapping[str, Any]
) -> Progress:
    """`statuses`: every scheduled step of the run -> its status, after the step that just ended."""
    ready = ready_steps(flow.subscriptions(), emitted.keys(), statuses.keys())
    if ready or any(status in IN_FLIGHT for status in statuses.values()):
        return Progress(ready=ready, skipped=[], finished=False)
    skipped = sorted(name for name in flow.steps if name not in statuses)
    return Progress(ready=[], skipped=skipped, finished=True)


def step_input(step: StepDefinition, emitted: Mapping[str, Any]) -> dict[str, Any]:
    """A subscribing step's input: each event it waits for -> that event's (first) payload."""
    return {event: emitted[event] for event in step.subscribes}
