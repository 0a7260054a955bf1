"""What happens after a step finishes: which steps became ready, which never will, and whether a
failure ends the run. Pure.

Completion rules (a run is over when nothing is queued, running, awaiting or ready):

- a step that failed for good emits nothing;
- a failure *blocks the flow*, and the run fails, when a step can no longer run because of it:
  the step waits for an event that, were the failed steps still able to emit, could still come
  (a step that a branch not taken keeps from running is skipped, failure or not); or when every
  step of a parallel layer (the steps that subscribe to the same events) failed and one of them
  is a leaf (nothing subscribes to what it emits);
- otherwise the failure is tolerated, and the run completes once every step is completed,
  skipped or failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flowhost._core import step_progress
from flowhost.engine.definitions import FlowDefinition, StepDefinition

# Step statuses for `step_progress`: a canceled step (its run ended) is over and emits nothing,
# like a skipped one; it is no failure.
_READINESS_STATUS = {"canceled": "skipped"}


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    # Steps whose subscriptions are now all satisfied: schedule them.
    ready: list[str]
    # Unscheduled steps that can never run: an event they wait for is not emitted and no step that
    # can still run declares it in `emits=`. Reported as soon as that is known, even while other
    # steps still run. A step that only a failure keeps from running is in `blocked` instead.
    skipped: list[str]
    # Nothing is queued, running, awaiting or ready: the run is over.
    finished: bool
    # The failed steps whose failure ends the run, sorted (empty: the run goes on).
    failed_by: list[str] = dataclasses.field(default_factory=list)
    # The unscheduled steps a failure keeps from running, sorted.
    blocked: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> bool:
        """A failure blocks the flow: the run fails."""
        return bool(self.failed_by)


def progress(
    flow: FlowDefinition, statuses: Mapping[str, str], emitted: Mapping[str, Any]
) -> Progress:
    """`statuses`: every scheduled step of the run -> its status, after the step that just ended."""
    readiness = {name: _READINESS_STATUS.get(status, status) for name, status in statuses.items()}
    ready, skipped, finished = step_progress(
        flow.subscriptions, flow.emits, emitted.keys(), readiness
    )
    failed = sorted(name for name, status in readiness.items() if status == "failed")
    if not failed:
        return Progress(ready=ready, skipped=skipped, finished=finished)
    # The same run, had the failed steps been able to emit still: what it could then reach and
    # now cannot, their failure blocks.
    hoped = {
        name: "running" if status == "failed" else status for name, status in readiness.items()
    }
    _, skipped_anyway, _ = step_progress(flow.subscriptions, flow.emits, emitted.keys(), hoped)
    blocked = sorted(set(skipped) - set(skipped_anyway))
    failed_by = set(_failures_blocking(flow, failed, blocked, emitted))
    failed_by.update(_failed_layers(flow, readiness))
    return Progress(
        ready=ready,
        skipped=sorted(skipped_anyway),
        finished=finished,
        failed_by=sorted(failed_by),
        blocked=blocked,
    )


def _failures_blocking(
    flow: FlowDefinition, failed: list[str], blocked: list[str], emitted: Mapping[str, Any]
) -> list[str]:
    """The failed steps that declare an event some blocked step still waits for."""
    missing = {event for name in blocked for event in flow.subscriptions[name]} - emitted.keys()
    return [name for name in failed if missing.intersection(flow.emits.get(name, ()))]


def _failed_layers(flow: FlowDefinition, statuses: Mapping[str, str]) -> list[str]:
    """The steps of each layer that failed as a whole and holds a leaf."""
    return [
        name
        for layer in flow.layers
        if all(statuses.get(name) == "failed" for name in layer)
        and not flow.leaves.isdisjoint(layer)
        for name in layer
    ]


def step_input(step: StepDefinition, emitted: Mapping[str, Any]) -> dict[str, Any]:
    """A subscribing step's input: each event it waits for -> that event's (first) payload."""
    return {event: emitted[event] for event in step.subscribes}
