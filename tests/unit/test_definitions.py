"""Flow assembly and validation: each problem names its file and line; other flows load."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from flowhost.engine.definitions import (
    AwaitDefinition,
    FlowDefinition,
    StepDefinition,
    build_flows,
)
from flowhost.engine.transitions import progress, step_input
from flowhost.triggers.declarations import StepTriggers
from flowhost_worker import Backoff


def make(
    flow: str,
    name: str,
    *,
    entry: bool = False,
    subscribes: tuple[str, ...] = (),
    emits: tuple[str, ...] = (),
    line: int = 1,
    attempts: int = 1,
) -> StepDefinition:
    return StepDefinition(
        flow=flow,
        name=name,
        entry=entry,
        subscribes=subscribes,
        emits=emits,
        attempts=attempts,
        backoff=Backoff(),
        timeout=None,
        file=f"functions/{name}.py",
        line=line,
        function=name,
    )


ORDERS = [
    make("orders", "validate", entry=True, emits=("validated",)),
    make("orders", "charge", subscribes=("validated",), emits=("charged",)),
    make("orders", "reserve", subscribes=("validated",), emits=("reserved",)),
    make("orders", "ship", subscribes=("charged", "reserved")),
]


def test_a_valid_flow_is_assembled() -> None:
    flows, problems = build_flows(ORDERS)
    assert problems == []
    assert flows["orders"].entry == "validate"
    assert flows["orders"].subscriptions["ship"] == ("charged", "reserved")


def test_two_entry_steps_reject_the_flow_and_name_both() -> None:
    steps = [*ORDERS, make("orders", "again", entry=True, line=7)]
    flows, problems = build_flows([*steps, make("other", "solo", entry=True)])
    assert "orders" not in flows and "other" in flows
    [problem] = problems
    assert str(problem) == (
        "functions/again.py:7: flow 'orders' has two entry steps: "
        "'validate' (functions/validate.py:1) and 'again'"
    )


def test_a_subscription_nobody_emits_is_reported_at_the_subscriber() -> None:
    steps = [*ORDERS, make("orders", "audit", subscribes=("audited",), line=3)]
    flows, problems = build_flows(steps)
    assert flows == {}
    assert [str(p) for p in problems] == [
        "functions/audit.py:3: flow 'orders': step 'audit' subscribes to 'audited', "
        "which no step of the flow emits"
    ]


def test_duplicate_step_names_and_missing_entry_are_reported() -> None:
    _, problems = build_flows(
        [
            make("f", "a", subscribes=("x",), emits=("x",), line=2),
            make("f", "a", subscribes=("x",), emits=("x",), line=9),
        ]
    )
    messages = [p.message for p in problems]
    assert any("defined twice" in m for m in messages)
    assert any("has no entry step" in m for m in messages)


def test_steps_waiting_on_a_cycle_are_reported() -> None:
    steps = [
        make("c", "start", entry=True, emits=("go",)),
        make("c", "a", subscribes=("go", "from_b"), emits=("from_a",)),
        make("c", "b", subscribes=("from_a",), emits=("from_b",)),
    ]
    flows, problems = build_flows(steps)
    assert flows == {}
    assert sorted(p.message.split("'")[3] for p in problems) == ["a", "b"]


def test_the_definition_hash_follows_the_declaration_not_the_location() -> None:
    flows, _ = build_flows(ORDERS)
    moved, _ = build_flows(
        [*ORDERS[:3], make("orders", "ship", subscribes=("charged", "reserved"), line=99)]
    )
    changed, _ = build_flows(
        [*ORDERS[:3], make("orders", "ship", subscribes=("charged", "reserved"), attempts=5)]
    )
    assert flows["orders"].hash == moved["orders"].hash
    assert flows["orders"].hash != changed["orders"].hash


def test_progress_waits_for_every_subscription() -> None:
    flows, _ = build_flows(ORDERS)
    flow = flows["orders"]
    after_validate = progress(flow, {"validate": "completed"}, {"validated": {}})
    assert after_validate.ready == ["charge", "reserve"] and not after_validate.finished
    half = progress(
        flow,
        {"validate": "completed", "charge": "completed", "reserve": "running"},
        {"validated": {}, "charged": {}},
    )
    assert half.ready == [] and not half.finished
    both = progress(
        flow,
        {"validate": "completed", "charge": "completed", "reserve": "completed"},
        {"validated": {}, "charged": {}, "reserved": {}},
    )
    assert both.ready == ["ship"]


def test_progress_skips_what_can_no_longer_run_once_nothing_is_in_flight() -> None:
    flows, _ = build_flows(ORDERS)
    flow = flows["orders"]
    # validate completed without emitting: nothing can ever run again.
    done = progress(flow, {"validate": "completed"}, {})
    assert done.finished and done.skipped == ["charge", "reserve", "ship"]
    assert step_input(flow.step("ship"), {"charged": 1, "reserved": 2, "other": 3}) == {
        "charged": 1,
        "reserved": 2,
    }


def awaiting(
    config: dict[str, Any], *, missing: frozenset[str] = frozenset(), runtime: str = "python"
) -> StepDefinition:
    """The entry step of flow 'f' with `config` (canonical keys) as its await_before."""
    return dataclasses.replace(
        make("f", "approve", entry=True, line=4),
        await_before=AwaitDefinition.from_config(config),
        missing_hooks=missing,
        runtime=runtime,
    )


def test_an_await_round_trips_through_its_canonical_config() -> None:
    config = {
        "type": "schedule",
        "delayMs": None,
        "event": None,
        "match": None,
        "method": "POST",
        "schema": None,
        "cron": "0 9 * * 1-5",
        "timezone": "Europe/Berlin",
        "timeoutMs": 7_200_000,
        "timeoutAction": "retry",
        "attempts": 2,
        "hooks": {"register": "mail", "resolve": None, "timeout": None},
    }
    declared = AwaitDefinition.from_config(config)
    assert declared is not None and declared.to_config() == config
    flows, problems = build_flows([awaiting(config)])
    assert problems == [] and flows["f"].step("approve").await_before == declared


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "schedule", "cron": "61 * * * *"}, 'minute field "61"'),
        ({"type": "schedule", "cron": "0 0 9 * * * 2030"}, "has 7 fields"),
        ({"type": "schedule", "cron": "@daily", "timezone": "Mars/Base"}, "unknown time zone"),
        ({"type": "time"}, "a time await needs 'delayMs'"),
        ({"type": "event"}, "an event await needs 'event'"),
        ({"type": "schedule"}, "a schedule await needs 'cron'"),
        ({"type": "signal"}, "its type 'signal' is none of time, event, webhook, schedule"),
        ({"type": "webhook", "timeoutAction": "wait"}, "its timeoutAction 'wait' is none of"),
    ],
)
def test_an_unusable_await_rejects_the_flow_at_the_step(
    config: dict[str, Any], message: str
) -> None:
    flows, problems = build_flows([awaiting(config), make("other", "solo", entry=True)])
    assert list(flows) == ["other"]
    [problem] = problems
    assert (problem.file, problem.line, problem.flow) == ("functions/approve.py", 4, "f")
    assert problem.message.startswith("flow 'f': step 'approve': await_before: ")
    assert message in problem.message


def test_a_hook_the_file_lacks_is_a_problem_worded_for_its_runtime() -> None:
    hooks = {"register": "mail", "resolve": "booked", "timeout": None}
    config = {"type": "webhook", "hooks": hooks}
    _, problems = build_flows([awaiting(config, missing=frozenset({"booked"}))])
    assert [p.message for p in problems] == [
        "flow 'f': step 'approve': await_before: the resolve hook 'booked' is not an async "
        "function of functions/approve.py"
    ]
    _, problems = build_flows([awaiting(config, missing=frozenset({"mail"}), runtime="node")])
    assert [p.message for p in problems] == [
        "flow 'f': step 'approve': awaitBefore: the register hook 'mail' is not an exported "
        "function of functions/approve.py"
    ]


def test_the_describers_hook_report_becomes_missing_hooks() -> None:
    entry = {
        "file": "functions/a.py",
        "line": 3,
        "function": "go",
        "hooks": {"mail": True, "gone": False},
        "config": {
            "flow": "f",
            "name": "go",
            "entry": True,
            "subscribes": [],
            "emits": [],
            "attempts": 1,
            "backoff": {"type": "fixed", "delayMs": 0, "maxDelayMs": 0},
            "timeoutMs": None,
            "awaitBefore": {"type": "webhook", "hooks": {"register": "mail", "timeout": "gone"}},
            "awaitAfter": None,
        },
    }
    step = StepDefinition.from_description(entry)
    assert step.missing_hooks == {"gone"}
    assert step.await_before is not None and step.await_before.on_timeout == "gone"


def with_triggers(step: StepDefinition, config: dict[str, Any]) -> StepDefinition:
    return dataclasses.replace(step, triggers=StepTriggers.from_config(config))


def test_triggers_are_checked_where_they_are_declared() -> None:
    bad = with_triggers(
        make("signups", "welcome", entry=True, line=4),
        {
            "subscribe": [{"name": "signup.form", "mode": "auto"}],
            "define": [
                {"name": "signup.form", "type": "manual", "config": {"schema": {"type": 3}}},
                {"name": "order.events", "type": "event", "config": {"events": ["order.#.x*"]}},
                {"name": "pigeon", "type": "carrier-pigeon", "config": {}},
            ],
        },
    )
    flows, problems = build_flows([bad, make("other", "solo", entry=True)])
    assert list(flows) == ["other"]
    messages = [str(p) for p in problems]
    assert messages[0].startswith(
        "functions/welcome.py:4: flow 'signups': step 'welcome': triggers.define[0] "
        "('signup.form'): /config/schema: is not a valid JSON Schema"
    )
    assert messages[1].startswith(
        "functions/welcome.py:4: flow 'signups': step 'welcome': triggers.define[1] "
        '(\'order.events\'): /config/events/0: invalid pattern "order.#.x*": segment "x*" '
        "mixes a wildcard"
    )
    assert "/type: must be one of event, webhook" in messages[2]


def test_a_trigger_defined_two_ways_rejects_the_later_flow() -> None:
    define = {"name": "tick", "type": "manual", "config": {}}
    first = with_triggers(make("a", "a", entry=True, line=1), {"define": [define]})
    same = with_triggers(make("b", "b", entry=True, line=1), {"define": [define]})
    other = with_triggers(
        make("c", "c", entry=True, line=9), {"define": [{**define, "description": "different"}]}
    )
    flows, problems = build_flows([first, same, other])
    assert sorted(flows) == ["a", "b"]
    assert [str(p) for p in problems] == [
        "functions/c.py:9: flow 'c': trigger 'tick' is defined differently at "
        "functions/a.py:1 (flow 'a'); define it once, or the same way"
    ]
    assert problems[0].flow == "c"


def test_triggers_stay_out_of_the_definition_hash() -> None:
    plain = make("signups", "welcome", entry=True)
    subscribed = with_triggers(plain, {"subscribe": [{"name": "x", "mode": "auto"}]})
    assert build_flows([plain])[0]["signups"].hash == build_flows([subscribed])[0]["signups"].hash


def test_a_registered_definition_rebuilds_with_the_same_hash() -> None:
    flows, _ = build_flows(
        [
            *ORDERS[:-1],
            dataclasses.replace(
                ORDERS[-1],
                await_before=AwaitDefinition.from_config({"type": "time", "delayMs": 1500}),
                timeout=2.5,
                concurrency=3,
            ),
        ]
    )
    original = flows["orders"]
    rebuilt = FlowDefinition.from_json(original.to_json())
    assert rebuilt.hash == original.hash and rebuilt.entry == original.entry
    assert rebuilt.limits == original.limits
    with pytest.raises(ValueError, match="unreadable"):
        FlowDefinition.from_json({"name": "x", "entry": "y", "steps": [{"name": "y"}]})
