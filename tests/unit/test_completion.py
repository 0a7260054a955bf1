"""Completion rules with tolerated failures (engine/transitions.py): a failure ends the run only
when it blocks the flow; otherwise the run goes on and completes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flowhost.engine.definitions import FlowDefinition, StepDefinition, build_flows
from flowhost.engine.transitions import progress
from tests.unit.test_definitions import make


def flow_of(*steps: StepDefinition) -> FlowDefinition:
    flows, problems = build_flows(steps)
    assert problems == []
    [flow] = flows.values()
    return flow


# start -> a, b in parallel (both leaves)
PARALLEL_LEAVES = flow_of(
    make("p", "start", entry=True, emits=("go",)),
    make("p", "a", subscribes=("go",)),
    make("p", "b", subscribes=("go",)),
)
# start -> a, b in parallel -> join (waits for both)
FAN_IN = flow_of(
    make("f", "start", entry=True, emits=("go",)),
    make("f", "a", subscribes=("go",), emits=("a.done",)),
    make("f", "b", subscribes=("go",), emits=("b.done",)),
    make("f", "join", subscribes=("a.done", "b.done")),
)
GO = {"go": {}}


def test_a_failed_parallel_leaf_is_tolerated_while_its_sibling_runs_and_after_it_completes() -> (
    None
):
    running = progress(PARALLEL_LEAVES, {"start": "completed", "a": "failed", "b": "running"}, GO)
    assert (running.failed_by, running.blocked, running.finished) == ([], [], False)
    done = progress(PARALLEL_LEAVES, {"start": "completed", "a": "failed", "b": "completed"}, GO)
    assert (done.failed_by, done.blocked, done.finished) == ([], [], True)


def test_a_layer_that_failed_as_a_whole_with_a_leaf_fails_the_run() -> None:
    outcome = progress(PARALLEL_LEAVES, {"start": "completed", "a": "failed", "b": "failed"}, GO)
    assert outcome.failed and outcome.failed_by == ["a", "b"]
    assert outcome.finished


def test_a_step_waiting_on_what_only_the_failed_step_emits_is_blocked_at_once() -> None:
    # `b` still runs, but `join` can never run now: no need to wait for `b`.
    outcome = progress(FAN_IN, {"start": "completed", "a": "failed", "b": "running"}, GO)
    assert outcome.failed_by == ["a"]
    assert outcome.blocked == ["join"]
    assert outcome.skipped == []  # blocked by a failure, not skipped
    assert not outcome.finished


def test_a_chain_behind_a_failure_is_blocked_and_names_the_failed_step() -> None:
    chain = flow_of(
        make("c", "start", entry=True, emits=("s",)),
        make("c", "first", subscribes=("s",), emits=("f",)),
        make("c", "second", subscribes=("f",), emits=("g",)),
        make("c", "third", subscribes=("g",)),
    )
    outcome = progress(chain, {"start": "completed", "first": "failed"}, {"s": 1})
    assert outcome.failed_by == ["first"]
    assert outcome.blocked == ["second", "third"]
    assert outcome.finished  # nothing left in flight: the run ends failed now


def test_a_failed_entry_step_fails_the_run_whether_or_not_it_is_a_leaf() -> None:
    alone = flow_of(make("e", "only", entry=True))
    assert progress(alone, {"only": "failed"}, {}).failed_by == ["only"]
    outcome = progress(FAN_IN, {"start": "failed"}, {})
    assert outcome.failed_by == ["start"]
    assert outcome.blocked == ["a", "b", "join"]


def test_a_branch_not_taken_is_skipped_not_blocked_even_beside_a_failure() -> None:
    fork = flow_of(
        make("b", "decide", entry=True, emits=("left", "right")),
        make("b", "go_left", subscribes=("left",), emits=("left.done",)),
        make("b", "go_right", subscribes=("right",), emits=("right.done",)),
        make("b", "join", subscribes=("left.done", "right.done")),
    )
    # `decide` took the left branch and `go_left` failed: `join` could never have run anyway
    # (`go_right` is skipped), so nothing is blocked; `go_left` is no leaf: the failure is
    # tolerated and the run completes.
    statuses = {"decide": "completed", "go_left": "failed", "go_right": "skipped"}
    outcome = progress(fork, statuses, {"left": {}})
    assert (outcome.failed_by, outcome.blocked, outcome.skipped) == ([], [], ["join"])
    assert outcome.finished
    # With a step that only needs the left branch's event, the same failure blocks it.
    with_report = flow_of(*(fork.steps.values()), make("b", "report", subscribes=("left.done",)))
    outcome = progress(with_report, statuses, {"left": {}})
    assert (outcome.failed_by, outcome.blocked, outcome.skipped) == (
        ["go_left"],
        ["report"],
        ["join"],
    )


def test_an_event_a_sibling_emitted_does_not_depend_on_the_failed_step() -> None:
    either = flow_of(
        make("x", "start", entry=True, emits=("go",)),
        make("x", "primary", subscribes=("go",), emits=("found",)),
        make("x", "fallback", subscribes=("go",), emits=("found",)),
        make("x", "use", subscribes=("found",)),
    )
    outcome = progress(
        either,
        {"start": "completed", "primary": "failed", "fallback": "completed"},
        {"go": {}, "found": {"by": "fallback"}},
    )
    assert (outcome.ready, outcome.failed_by, outcome.blocked) == (["use"], [], [])


def test_a_completion_can_reveal_that_a_failure_blocks_the_flow() -> None:
    either = flow_of(
        make("y", "start", entry=True, emits=("go",)),
        make("y", "primary", subscribes=("go",), emits=("found",)),
        make("y", "fallback", subscribes=("go",), emits=("found",)),
        make("y", "use", subscribes=("found",)),
    )
    waiting = progress(
        either, {"start": "completed", "primary": "failed", "fallback": "running"}, GO
    )
    assert (waiting.failed_by, waiting.blocked) == ([], [])
    # `fallback` completed without emitting `found`: only the failed `primary` could have.
    done = progress(
        either, {"start": "completed", "primary": "failed", "fallback": "completed"}, GO
    )
    assert (done.failed_by, done.blocked) == (["primary"], ["use"])


def test_a_canceled_step_emits_nothing_and_is_no_failure() -> None:
    statuses = {"start": "completed", "a": "completed", "b": "canceled"}
    outcome = progress(FAN_IN, statuses, {"go": {}, "a.done": {}})
    assert (outcome.ready, outcome.skipped, outcome.failed_by) == ([], ["join"], [])
    assert outcome.finished


names = st.sampled_from([f"s{i}" for i in range(6)])
events = st.sampled_from(["e0", "e1", "e2", "e3"])


@st.composite
def runs(draw: st.DrawFn) -> tuple[FlowDefinition, dict[str, str], dict[str, object]]:
    others = draw(st.lists(names, unique=True, max_size=5).filter(lambda n: "s0" not in n))
    steps = [make("r", "s0", entry=True, emits=tuple(draw(st.lists(events, max_size=2))))]
    steps += [
        make(
            "r",
            name,
            subscribes=tuple(draw(st.lists(events, min_size=1, max_size=2))),
            emits=tuple(draw(st.lists(events, max_size=2))),
        )
        for name in others
    ]
    flows, _ = build_flows(steps)
    flow = flows.get("r")
    if flow is None:  # an invalid flow (a subscription nobody emits, a cycle)
        flow = FlowDefinition("r", "s0", {"s0": steps[0]})
    statuses = draw(
        st.dictionaries(
            st.sampled_from(sorted(flow.steps)),
            st.sampled_from(["queued", "running", "completed", "failed", "skipped"]),
        )
    )
    emitted = dict.fromkeys(draw(st.sets(events)), 1)
    return flow, statuses, emitted


@given(runs())
def test_only_failures_block_and_blocked_steps_are_neither_ready_nor_skipped(
    run: tuple[FlowDefinition, dict[str, str], dict[str, object]],
) -> None:
    flow, statuses, emitted = run
    outcome = progress(flow, statuses, emitted)
    failed = {name for name, status in statuses.items() if status == "failed"}
    assert set(outcome.failed_by) <= failed
    if not failed:
        assert (outcome.failed_by, outcome.blocked) == ([], [])
    if outcome.blocked:
        assert outcome.failed_by, "a step blocked by a failure names the failure"
    unscheduled = set(flow.steps) - set(statuses)
    assert set(outcome.blocked) <= unscheduled
    assert not set(outcome.blocked) & (set(outcome.ready) | set(outcome.skipped))
