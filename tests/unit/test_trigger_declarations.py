"""Trigger declarations without a database: configs by type, payload schemas, redaction."""

from __future__ import annotations

import pickle

import pytest

from flowhost.errors import TriggerConfigError, TriggerInputError
from flowhost.triggers.declarations import (
    FieldError,
    StepTriggers,
    TriggerSpec,
    check_config,
    event_patterns,
    payload_errors,
    redact,
    schema_problem,
)


def test_event_patterns_default_to_the_triggers_name() -> None:
    assert event_patterns("order.paid", {}) == ["order.paid"]
    assert event_patterns("x", {"events": "order.*"}) == ["order.*"]
    assert event_patterns("x", {"events": ["a.#", "b"]}) == ["a.#", "b"]


@pytest.mark.parametrize(
    ("name", "config", "expected"),
    [
        ("order.paid", {}, []),
        ("x", {"events": []}, [("/config/events", "must be an event pattern or a list of them")]),
        ("x", {"events": 3}, [("/config/events", "must be an event pattern or a list of them")]),
        ("x", {"events": ["a.*", 4]}, [("/config/events/1", "must be a string")]),
        ("x", "nope", [("/config", "must be a JSON object")]),
        ("x", {"schema": {"type": "strin"}}, [("/config/schema", None)]),
        ("x", {"ratio": float("nan")}, [("/config", None)]),
    ],
)
def test_event_configs_are_checked(
    name: str, config: object, expected: list[tuple[str, str | None]]
) -> None:
    found = check_config("event", name, config)
    assert [e.pointer for e in found] == [pointer for pointer, _ in expected]
    for error, (_, message) in zip(found, expected, strict=True):
        if message is not None:
            assert error.message == message


def test_a_pattern_the_index_refuses_is_a_field_error() -> None:
    [error] = check_config("event", "x", {"events": ["order..paid"]})
    assert error.pointer == "/config/events/0" and "empty segment" in error.message
    # The default pattern is the name itself, and is checked as such.
    [error] = TriggerSpec("a..b", "event").problems()
    assert error.pointer == "/name"


def test_types_not_checked_yet_take_any_json_object() -> None:
    for kind in ("cloudevents",):
        assert TriggerSpec("t", kind, {"anything": {"goes": [1, 2]}}).problems() == []
    # Schedules are checked (tests/unit/test_schedule_config.py): unknown keys are refused.
    [problem] = TriggerSpec("t", "schedule", {"cron": "@daily", "anything": 1}).problems()
    assert problem.pointer == "/config/anything"
    # mqtt and amqp configs are checked by flowhost.connectors (tests/unit/test_connectors.py).
    for kind in ("mqtt", "amqp"):
        assert TriggerSpec("t", kind, {"anything": {"goes": [1, 2]}}).problems() != []


def test_payload_errors_point_into_the_payload() -> None:
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
        "required": ["items"],
    }
    assert payload_errors(schema, {"items": [1, "two", 3]}) == [
        FieldError("/items/1", "'two' is not of type 'integer'")
    ]
    assert payload_errors(schema, {"items": []}) == []
    assert payload_errors(True, "anything") == []
    assert schema_problem({"type": "object"}) is None
    assert schema_problem("object") == "must be a JSON Schema (an object)"


def test_secrets_are_redacted_wherever_they_nest() -> None:
    config = {
        "auth": {"scheme": "stripe", "secret": "whsec_1", "apiKey": "k", "header": "X-Sig"},
        "keys": [{"password": "p"}, {"user": "u"}],
        "token": "",
    }
    assert redact(config) == {
        "auth": {"scheme": "stripe", "secret": "***", "apiKey": "***", "header": "X-Sig"},
        "keys": [{"password": "***"}, {"user": "u"}],
        "token": "",
    }
    assert config["auth"]["secret"] == "whsec_1"  # the original is untouched


def test_step_triggers_report_duplicates_and_bad_modes() -> None:
    triggers = StepTriggers.from_config(
        {
            "subscribe": [{"name": "a", "mode": "sometimes"}],
            "define": [{"name": "a", "type": "manual"}, {"name": "a", "type": "manual"}],
        }
    )
    assert triggers is not None
    assert triggers.problems() == [
        "triggers.define: trigger 'a' is defined twice",
        "triggers.subscribe: mode of 'a' must be auto or manual",
    ]


def test_field_errors_survive_a_process_boundary() -> None:
    errors = [{"pointer": "/email", "message": "'email' is a required property"}]
    for kind in (TriggerInputError, TriggerConfigError):
        error = kind("refused", trigger="t", errors=errors)
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is kind and again.errors == errors and again.message == "refused"
        assert isinstance(again, ValueError)
