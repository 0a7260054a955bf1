"""Pure parts of run health: stall timeouts from definitions, the state reducer, the step
figures taken from step events, and comparing kept statistics with rebuilt ones."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from flowhost.engine.definitions import AwaitDefinition, FlowDefinition, build_flows
from flowhost.engine.stall_timeouts import levels, stall_timeout
from flowhost.store.events import NewEvent
from flowhost.store.runs import step_figures
from flowhost.store.state_history import reduce_state
from flowhost.store.statistics import _compare
from tests.unit.test_definitions import make

MINUTE = 60.0


def flow_of(*steps: object) -> FlowDefinition:
    flows, problems = build_flows(steps)  # type: ignore[arg-type]
    assert not problems
    [flow] = flows.values()
    return flow


ORDERS = flow_of(
    make("orders", "validate", entry=True, emits=("validated",)),
    make("orders", "charge", subscribes=("validated",), emits=("charged",)),
    make("orders", "reserve", subscribes=("validated",), emits=("reserved",)),
    make("orders", "ship", subscribes=("charged", "reserved"), emits=("shipped",)),
    # Waits on the entry and on the last step: its level is below the deepest.
    make("orders", "receipt", subscribes=("validated", "shipped")),
)


def test_levels_follow_the_deepest_emitter() -> None:
    assert levels(ORDERS) == [["validate"], ["charge", "reserve"], ["ship"], ["receipt"]]


def test_a_flow_of_default_steps_gets_five_minutes_a_level_plus_the_buffer() -> None:
    # 4 levels of 5 min = 20 min; 10 % is 2 min, less than the 5 min floor.
    assert stall_timeout(ORDERS) == 20 * MINUTE + 5 * MINUTE


def test_step_timeouts_and_awaits_count_the_longest_step_of_each_level() -> None:
    approve = AwaitDefinition(type="webhook", timeout=3600.0)
    wait = AwaitDefinition(type="time", delay=90.0)
    flow = flow_of(
        dataclasses.replace(
            make("f", "start", entry=True, emits=("a", "b")), timeout=10.0, await_after=wait
        ),
        dataclasses.replace(make("f", "quick", subscribes=("a",)), timeout=1.0),
        dataclasses.replace(make("f", "approve", subscribes=("b",)), await_before=approve),
    )
    # Level 0: 10 s + the 90 s time await; level 1: approve's 5 min default + its 1 h await.
    total = 100.0 + 300.0 + 3600.0
    assert stall_timeout(flow) == total + 0.1 * total


def test_a_schedule_await_without_timeout_adds_nothing() -> None:
    schedule = AwaitDefinition(type="schedule", cron="0 9 * * 1")
    flow = flow_of(
        dataclasses.replace(make("s", "only", entry=True), timeout=60.0, await_before=schedule)
    )
    assert stall_timeout(flow) == 60.0 + 5 * MINUTE


def test_the_state_reducer_sets_overwrites_and_deletes_in_order() -> None:
    events = [
        ("state.set", {"key": "a", "value": 1}),
        ("log", {"message": "ignored"}),
        ("state.set", {"key": "b", "value": {"x": [1, 2]}}),
        ("state.set", {"key": "a", "value": 2}),
        ("state.delete", {"key": "b"}),
        ("state.delete", {"key": "never-set"}),
        ("state.set", {"key": "c", "value": None}),
    ]
    assert reduce_state(events) == {"a": 2, "c": None}
    assert reduce_state(events[:3]) == {"a": 1, "b": {"x": [1, 2]}}
    assert reduce_state([]) == {}


def test_step_figures_come_from_the_step_events_only() -> None:
    run = uuid.uuid4()
    done = "2025-01-01T00:00:01.5+00:00"
    figures = step_figures(
        [
            NewEvent(run, "step.completed", {"duration_ms": 12.5, "finished_at": done}, "a", 1),
            NewEvent(run, "step.retry", {"error": {}}, "b", 1),
            NewEvent(run, "step.failed", {"error": {}, "finished_at": done}, "b", 2),
            NewEvent(run, "step.skipped", {"reason": "x"}, "c"),
            NewEvent(run, "log", {"message": "m"}, "a", 1),
            NewEvent(run, "flow.completed", {"result": None}),
        ]
    )
    counted = [
        (f["step"], f["completed"], f["failed"], f["retried"], f["skipped"]) for f in figures
    ]
    assert counted == [("a", 1, 0, 0, 0), ("b", 0, 0, 1, 0), ("b", 0, 1, 0, 0), ("c", 0, 0, 0, 1)]
    assert figures[0]["duration_ms"] == 12.5 and figures[0]["finished_at"] == done
    assert figures[2]["duration_ms"] is None and figures[2]["finished_at"] == done


@pytest.mark.parametrize(
    ("kept", "rebuilt", "expected"),
    [
        (
            {"completed": 3, "total_duration_ms": Decimal("1.500")},
            {"completed": 3, "total_duration_ms": Decimal("1.5")},
            [],
        ),
        ({"completed": 0}, {}, []),  # a row the events do not know, counting nothing
        ({"completed": 2}, {"completed": 3}, [("completed", 2, 3)]),
        (
            {},
            {"last_finished_at": datetime(2025, 1, 1, tzinfo=UTC)},
            [("last_finished_at", None, datetime(2025, 1, 1, tzinfo=UTC))],
        ),
    ],
)
def test_comparing_kept_and_rebuilt_statistics(
    kept: dict[str, object], rebuilt: dict[str, object], expected: list[tuple[object, ...]]
) -> None:
    columns = ("completed", "total_duration_ms", "last_finished_at")
    found = _compare(
        "step_stats",
        [{"flow": "f", "step": "s", **kept}],
        [{"flow": "f", "step": "s", **rebuilt}] if rebuilt else [],
        ("flow", "step"),
        columns,
    )
    assert [(d.column, d.kept, d.rebuilt) for d in found] == expected
    assert all(d.key == "f/s" for d in found)
