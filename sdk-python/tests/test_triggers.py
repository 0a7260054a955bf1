"""`@step(triggers=...)`: the shape is checked at import and written in the canonical config."""

from __future__ import annotations

from typing import Any

import pytest

from flowhost_worker import RunContext, StepConfigError, step, step_config


def canonical(triggers: Any, **options: Any) -> Any:
    @step(flow="signups", entry=options.pop("entry", True), triggers=triggers, **options)
    async def welcome(data: Any, ctx: RunContext) -> None: ...

    config = step_config(welcome)
    assert config is not None
    return config.to_dict()["triggers"]


def test_no_triggers_is_null() -> None:
    assert canonical(None) is None


def test_subscriptions_and_definitions_reach_the_canonical_config() -> None:
    written = canonical(
        {
            "subscribe": ["signup.form", {"name": "user.created", "mode": "manual"}, "signup.form"],
            "define": {
                "name": "signup.form",
                "type": "manual",
                "display_name": "Sign up",
                "config": {"schema": {"type": "object"}},
            },
        }
    )
    assert written == {
        "subscribe": [
            {"name": "signup.form", "mode": "auto"},
            {"name": "user.created", "mode": "manual"},
        ],
        "define": [
            {
                "name": "signup.form",
                "type": "manual",
                "displayName": "Sign up",
                "description": None,
                "config": {"schema": {"type": "object"}},
            }
        ],
    }
    assert list(written["define"][0]) == ["name", "type", "displayName", "description", "config"]


def test_mode_is_the_default_of_names_given_alone() -> None:
    assert canonical({"subscribe": "orders.paid", "mode": "manual"}) == {
        "subscribe": [{"name": "orders.paid", "mode": "manual"}],
        "define": [],
    }
    assert canonical({}) == {"subscribe": [], "define": []}


@pytest.mark.parametrize(
    ("triggers", "options", "message"),
    [
        (
            {"subscribe": "x"},
            {"entry": False, "subscribes": "a"},
            "declare them on the flow's entry",
        ),
        (["x"], {}, "must be a mapping"),
        ({"subscribes": "x"}, {}, "unknown key 'subscribes'"),
        ({"mode": "sometimes"}, {}, "triggers.mode must be 'auto' or 'manual'"),
        ({"subscribe": ["ok", "no spaces"]}, {}, r"triggers.subscribe\[1\] must be a trigger name"),
        ({"subscribe": [{"name": "x", "mode": "later"}]}, {}, "got 'later'"),
        ({"subscribe": ["x", {"name": "x", "mode": "manual"}]}, {}, "twice, with two modes"),
        ({"define": {"name": "x"}}, {}, r"define\[0\].type must be a trigger type"),
        ({"define": [{"name": "x", "type": "Web Hook"}]}, {}, "got 'Web Hook'"),
        ({"define": {"name": "x", "type": "event", "cron": "* * * * *"}}, {}, "unknown key 'cron'"),
        ({"define": {"name": "x", "type": "event", "config": "order.*"}}, {}, "config must be a"),
        ({"define": {"name": "x", "type": "event", "config": {"r": float("nan")}}}, {}, "nan"),
        (
            {"define": [{"name": "x", "type": "event"}, {"name": "x", "type": "manual"}]},
            {},
            "twice",
        ),
        ({"define": {"name": "x", "type": "manual", "display_name": 3}}, {}, "must be a string"),
        ({"define": "x"}, {}, "define must be a mapping or a list"),
    ],
)
def test_every_mistake_is_a_step_config_error(
    triggers: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(StepConfigError, match=message) as raised:
        canonical(triggers, **options)
    assert raised.value.field == "triggers"
