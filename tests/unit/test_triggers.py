"""flowhost.triggers.TriggerIndex against a regex reference, for both syntaxes."""

from __future__ import annotations

import contextlib
import pickle
import re
from collections.abc import Hashable
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowhost.errors import EventNameError, FlowhostError, PatternError
from flowhost.triggers import TriggerIndex

Syntax = Literal["event", "mqtt"]

SEPARATOR = {"event": ".", "mqtt": "/"}
SINGLE = {"event": "*", "mqtt": "+"}


def reference(syntax: str, pattern: str, name: str) -> bool:
    """The syntax by definition: a regex over the name with a separator before every segment."""
    separator, single = SEPARATOR[syntax], SINGLE[syntax]
    segment = f"[^{re.escape(separator)}]*"
    pieces = []
    for part in pattern.split(separator):
        if part == "#":
            pieces.append(f"(?:{re.escape(separator)}{segment})*")
        elif part == single:
            pieces.append(f"{re.escape(separator)}{segment}")
        else:
            pieces.append(re.escape(separator + part))
    if syntax == "mqtt" and name.startswith("$") and pattern.split("/")[0] in ("#", "+"):
        return False
    return re.fullmatch("".join(pieces), separator + name) is not None


def joined(syntax: str, words: list[str]) -> str:
    return SEPARATOR[syntax].join(words)


event_patterns = st.lists(st.sampled_from(["a", "b", "c", "*", "#"]), min_size=1, max_size=5)
event_names = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=6)
mqtt_patterns = st.builds(
    # Never `[""]`: the empty topic filter is invalid.
    lambda levels, multi: [*levels, "#"] if multi or levels in ([], [""]) else levels,
    st.lists(st.sampled_from(["a", "b", "", "$s", "+"]), max_size=4),
    st.booleans(),
)
mqtt_names = st.lists(st.sampled_from(["a", "b", "", "$s", "c"]), min_size=1, max_size=5).filter(
    lambda levels: levels != [""]
)


def check(syntax: Syntax, patterns: list[list[str]], names: list[list[str]]) -> None:
    index = TriggerIndex(syntax=syntax)
    texts = [joined(syntax, words) for words in patterns]
    for text in texts:
        index.add(text, text)
    for words in names:
        name = joined(syntax, words)
        expected = list(dict.fromkeys(t for t in texts if reference(syntax, t, name)))
        assert index.match(name) == expected, (name, texts)


@given(st.lists(event_patterns, max_size=15), st.lists(event_names, min_size=1, max_size=10))
def test_event_matching_agrees_with_the_regex_reference(
    patterns: list[list[str]], names: list[list[str]]
) -> None:
    check("event", patterns, names)


@given(st.lists(mqtt_patterns, max_size=15), st.lists(mqtt_names, min_size=1, max_size=10))
def test_mqtt_matching_agrees_with_the_regex_reference(
    patterns: list[list[str]], names: list[list[str]]
) -> None:
    check("mqtt", patterns, names)


@given(
    st.lists(st.tuples(st.sampled_from(["a.b", "a.*", "#", "a.#", "*.b"]), st.integers(0, 3))),
    st.data(),
)
def test_add_and_remove_keep_the_index_equal_to_a_plain_list(
    operations: list[tuple[str, int]], data: st.DataObject
) -> None:
    index = TriggerIndex()
    registered: list[tuple[str, int]] = []
    for pattern, value in operations:
        if data.draw(st.booleans(), label="remove"):
            assert index.remove(pattern, value) == ((pattern, value) in registered)
            if (pattern, value) in registered:
                registered.remove((pattern, value))
        else:
            index.add(pattern, value)
            if (pattern, value) not in registered:
                registered.append((pattern, value))
    assert index.registrations() == registered
    assert len(index) == len(registered)
    assert index.patterns() == sorted({pattern for pattern, _ in registered})
    for name in ["a.b", "a", "b", "x.y.z"]:
        expected = [v for p, v in registered if reference("event", p, name)]
        assert index.match(name) == list(dict.fromkeys(expected))


@given(st.text(max_size=12), st.text(max_size=12), st.sampled_from(["event", "mqtt"]))
def test_arbitrary_text_is_matched_or_refused_never_crashes(
    pattern: str, name: str, syntax: Syntax
) -> None:
    index = TriggerIndex(syntax=syntax)
    try:
        index.add(pattern, "value")
    except (PatternError, UnicodeEncodeError):
        assert len(index) == 0
    with contextlib.suppress(EventNameError, UnicodeEncodeError):
        index.match(name)


def test_values_come_once_in_registration_order() -> None:
    index = TriggerIndex()
    first, second = object(), object()
    index.add("order.#", second)
    index.add("order.paid", first)
    index.add("#", second)
    index.add("order.paid", first)
    assert len(index) == 3
    assert index.match("order.paid") == [second, first]
    assert index.match("order.paid")[1] is first
    assert index.match("invoice") == [second]


@pytest.mark.parametrize(
    ("syntax", "pattern", "problem"),
    [
        ("event", "", "must not be empty"),
        ("event", "a..b", "empty segment"),
        ("event", ".a", "empty segment"),
        ("event", "a*", "mixes a wildcard"),
        ("event", "a.#b", "mixes a wildcard"),
        ("mqtt", "", "must not be empty"),
        ("mqtt", "sport/#/rank", "last level"),
        ("mqtt", "sport+", "mixes a wildcard"),
        ("mqtt", "a\0b", "U+0000"),
    ],
)
def test_invalid_patterns_raise_pattern_error_naming_the_problem(
    syntax: Syntax, pattern: str, problem: str
) -> None:
    index = TriggerIndex(syntax=syntax)
    with pytest.raises(PatternError, match=re.escape(problem)) as raised:
        index.add(pattern, 1)
    error = raised.value
    assert isinstance(error, ValueError) and isinstance(error, FlowhostError)
    assert error.details == {"pattern": pattern, "problem": error.details["problem"]}
    assert problem in error.details["problem"]
    assert pickle.loads(pickle.dumps(error)).details == error.details
    with pytest.raises(PatternError):
        index.remove(pattern, 1)


@pytest.mark.parametrize(
    ("syntax", "name"),
    [("event", ""), ("event", "a.*"), ("event", "a.#"), ("event", "a..b"), ("mqtt", "a/+")],
)
def test_names_with_wildcards_raise_event_name_error(syntax: Syntax, name: str) -> None:
    index = TriggerIndex(syntax=syntax)
    with pytest.raises(EventNameError) as raised:
        index.match(name)
    assert raised.value.details["name"] == name


def test_wrong_types_raise_type_error() -> None:
    index = TriggerIndex()
    unhashable: Hashable = []  # type: ignore[assignment]
    with pytest.raises(TypeError):
        index.add("a", unhashable)
    with pytest.raises(TypeError):
        index.match(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'event' or 'mqtt'"):
        TriggerIndex(syntax="amqp")  # type: ignore[arg-type]
    assert len(index) == 0
