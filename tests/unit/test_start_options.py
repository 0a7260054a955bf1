"""Start options are checked before anything is written."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from flowhost.engine.json_pointer import resolve
from flowhost.engine.starting import StartOptions
from flowhost.errors import InvalidInputError


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"priority": 1001}, "priority must be from"),
        ({"priority": "high"}, "priority must be an integer"),
        ({"delay": -1}, "delay must be >= 0"),
        ({"delay": float("nan")}, "finite number"),
        ({"dedupe_key": "k"}, "go together"),
        ({"debounce_window": 2.0}, "go together"),
        ({"dedupe_key": "k", "dedupe_window": 0}, "must be > 0"),
        ({"dedupe_key": "", "dedupe_window": 1}, "non-empty string"),
        ({"dedupe_key": 7, "dedupe_window": 1}, "non-empty string"),
        ({"idempotency_key": "a", "dedupe_key": "b", "dedupe_window": 1}, "one start key"),
        ({"debounce_key": "k", "debounce_window": 1, "delay": 2}, "takes no delay"),
    ],
)
def test_bad_start_options_are_refused_with_the_reason(
    params: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        StartOptions.from_params(params)


def test_start_at_needs_a_time_zone_and_excludes_delay() -> None:
    with pytest.raises(InvalidInputError, match="time zone"):
        StartOptions(start_at=datetime.datetime(2030, 1, 1))
    at = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    with pytest.raises(InvalidInputError, match="not both"):
        StartOptions(start_at=at, delay=1)


def test_params_other_than_start_options_are_ignored() -> None:
    options = StartOptions.from_params({"flow": "x", "input": 1, "priority": 4, "delay": 2})
    assert (options.priority, options.delay) == (4, 2.0)


@pytest.mark.parametrize(
    ("pointer", "found"),
    [
        ("", (True, {"a/b": [1, {"~k": 2}], "t": None})),
        ("/t", (True, None)),
        ("/a~1b/1/~0k", (True, 2)),
        ("/a~1b/01", (False, None)),
        ("/a~1b/2", (False, None)),
        ("/missing", (False, None)),
        ("/t/deeper", (False, None)),
    ],
)
def test_json_pointers_resolve_as_rfc_6901_says(pointer: str, found: tuple[bool, Any]) -> None:
    assert resolve({"a/b": [1, {"~k": 2}], "t": None}, pointer) == found
