"""Flow definitions made in tests without discovery."""

from __future__ import annotations

from typing import Any

from flowhost.engine.definitions import FlowDefinition, StepDefinition, build_flows
from flowhost_worker import Backoff


def make(
    name: str,
    *,
    entry: bool = False,
    subscribes: tuple[str, ...] = (),
    emits: tuple[str, ...] = (),
    runtime: str = "python",
    **extra: Any,
) -> StepDefinition:
    """A step of flow "f" in `functions/<name>.py`; `extra`: any other StepDefinition field."""
    return StepDefinition(
        flow="f",
        name=name,
        entry=entry,
        subscribes=subscribes,
        emits=emits,
        attempts=1,
        backoff=Backoff(),
        timeout=None,
        file=f"functions/{name}.py",
        line=1,
        function=name,
        runtime=runtime,
        **extra,
    )


def flow_of(*steps: StepDefinition) -> FlowDefinition:
    flows, problems = build_flows(steps)
    assert problems == []
    return flows["f"]
