"""progress(): ready steps, steps skipped as soon as they can never run, and the end of a run."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flowhost._core import step_progress
from flowhost.engine.definitions import build_flows
from flowhost.engine.transitions import progress
from tests.unit.test_definitions import make

FORK = [
    make("fork", "decide", entry=True, emits=("go.left", "go.right")),
    make("fork", "left", subscribes=("go.left",), emits=("left.done",)),
    make("fork", "right", subscribes=("go.right",), emits=("right.done",)),
    make("fork", "join", subscribes=("left.done", "right.done")),
]


def test_a_branch_not_taken_is_skipped_while_the_other_still_runs() -> None:
    flows, problems = build_flows(FORK)
    assert not problems
    flow = flows["fork"]
    after = progress(flow, {"decide": "completed"}, {"go.left": {}})
    assert (after.ready, after.skipped, after.finished) == (["left"], ["join", "right"], False)
    running = progress(
        flow,
        {"decide": "completed", "left": "running", "right": "skipped", "join": "skipped"},
        {"go.left": {}},
    )
    assert (running.ready, running.skipped, running.finished) == ([], [], False)
    done = progress(
        flow,
        {"decide": "completed", "left": "completed", "right": "skipped", "join": "skipped"},
        {"go.left": {}, "left.done": {}},
    )
    assert (done.ready, done.skipped, done.finished) == ([], [], True)


def test_a_step_that_may_still_emit_keeps_its_subscribers_waiting() -> None:
    flow = build_flows(FORK)[0]["fork"]
    waiting = progress(flow, {"decide": "running"}, {})
    assert (waiting.ready, waiting.skipped, waiting.finished) == ([], [], False)


def reference(
    flow: dict[str, tuple[list[str], list[str]]], emitted: set[str], statuses: dict[str, str]
) -> tuple[list[str], list[str], bool]:
    """The rules computed the slow way: grow the steps that can still run to a fixed point."""
    in_flight = {"queued", "running"}
    unscheduled = {n for n, (subs, _) in flow.items() if n not in statuses and subs}
    entry_waiting = any(not subs and n not in statuses for n, (subs, _) in flow.items())
    possible = set(emitted)
    for name, (subs, emits) in flow.items():
        if statuses.get(name) in in_flight or (name not in statuses and not subs):
            possible |= set(emits)
    live: set[str] = set()
    while grown := {n for n in unscheduled - live if set(flow[n][0]) <= possible}:
        live |= grown
        for name in grown:
            possible |= set(flow[name][1])
    ready = sorted(n for n in unscheduled if set(flow[n][0]) <= emitted)
    finished = not ready and not entry_waiting and not set(statuses.values()) & in_flight
    return ready, sorted(unscheduled - live), finished


events = st.sampled_from(["e0", "e1", "e2", "e3", "e4"])
flows = st.dictionaries(
    st.sampled_from([f"s{i}" for i in range(7)]),
    st.tuples(st.lists(events, max_size=3), st.lists(events, max_size=3)),
)


@given(flows, st.sets(events), st.data())
def test_step_progress_agrees_with_the_fixed_point_reference(
    flow: dict[str, tuple[list[str], list[str]]], emitted: set[str], data: st.DataObject
) -> None:
    statuses = data.draw(
        st.dictionaries(
            st.sampled_from(sorted(flow) or ["s0"]),
            st.sampled_from(["queued", "running", "completed", "failed", "skipped"]),
        ),
        label="statuses",
    )
    subscriptions = {name: subs for name, (subs, _) in flow.items()}
    emits = {name: out for name, (_, out) in flow.items()}
    assert step_progress(subscriptions, emits, emitted, statuses) == reference(
        flow, emitted, statuses
    )
