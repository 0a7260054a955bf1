"""What happens after a step finishes: which steps became ready, which never will. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flowhost._core import step_progress
from flowhost.engine.definitions import FlowDefinition, StepDefinition


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    # Steps whose subscriptions are now all satisfied: schedule them.
    ready: list[str]
    # Unscheduled steps that can never run: an event they wait for is not emitted and no step that
    # can still run declares it in `emits=`. Reported as soon as that is known, even while other
    # steps still run.
    skipped: list[str]
    # Nothing is queued, running or ready: the run is over.
    finished: bool


def progress(
    flow: FlowDefinition, statuses: Mapping[str, str], emitted: Mapping[str, Any]
) -> Progress:
    """`statuses`: every scheduled step of the run -> its status, after the step that just ended."""
    ready, skipped, finished = step_progress(
        flow.subscriptions, flow.emits, emitted.keys(), statuses
    )
    return Progress(ready=ready, skipped=skipped, finished=finished)


def step_input(step: StepDefinition, emitted: Mapping[str, Any]) -> dict[str, Any]:
    """A subscribing step's input: each event it waits for -> that event's (first) payload."""
    return {event: emitted[event] for event in step.subscribes}
