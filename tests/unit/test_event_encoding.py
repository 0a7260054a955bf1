"""encode_events on hostile input: a clear TypeError/ValueError, never a crash."""

from __future__ import annotations

import enum
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowhost._core import InvalidArgumentError, encode_events

RUN = uuid.UUID(int=7)

ANYTHING = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary(max_size=4)
    | st.just(object())
    | st.just(b"x")
    | st.sets(st.integers(), max_size=2),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.text() | st.integers() | st.none(), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.lists(
        st.tuples(st.just(RUN) | ANYTHING, ANYTHING, ANYTHING, ANYTHING, ANYTHING) | ANYTHING,
        max_size=3,
    )
)
def test_random_input_is_encoded_or_refused_cleanly(events: list[Any]) -> None:
    try:
        stream = encode_events(events)
    except (TypeError, ValueError):
        return
    assert stream.startswith(b"PGCOPY\n\xff\r\n\0") and stream.endswith(b"\xff\xff")


def test_an_empty_batch_is_a_valid_empty_stream() -> None:
    assert encode_events([]) == b"PGCOPY\n\xff\r\n\0" + bytes(8) + b"\xff\xff"


class Colour(enum.IntEnum):
    RED = 1


class Name(enum.StrEnum):
    ADA = "ada"


def test_int_and_str_subclasses_are_written_by_value() -> None:
    stream = encode_events([(RUN, "log", None, None, {"colour": Colour.RED, "who": Name.ADA})])
    assert b'{"colour":1,"who":"ada"}' in stream


def test_containers_nested_too_deeply_or_containing_themselves_are_refused() -> None:
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="nested deeper than 256"):
        encode_events([(RUN, "log", None, None, looped)])
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        encode_events([(RUN, "log", None, None, deep)])


@pytest.mark.parametrize(
    ("event", "error", "message"),
    [
        ("not a tuple", TypeError, r"events\[0\]: must be a \(run_id"),
        ((RUN, "log", None, None), TypeError, "a tuple of 4"),
        (("7", "log", None, None, {}), TypeError, "run_id must be a uuid.UUID, not str"),
        ((RUN, 5, None, None, {}), TypeError, "type must be str, not int"),
        ((RUN, "log", b"step", None, {}), TypeError, "step must be str, not bytes"),
        ((RUN, "log", None, 2**40, {}), ValueError, "attempt must be None or an int"),
        ((RUN, "lo\0g", None, None, {}), InvalidArgumentError, "NUL character"),
        ((RUN, "log", "\ud800", None, {}), InvalidArgumentError, "lone surrogate"),
        ((RUN, "log", None, None, {"k": float("inf")}), ValueError, r"data\['k'\]: inf"),
    ],
)
def test_bad_fields_name_the_event_and_the_field(
    event: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        encode_events([event])


def test_events_must_be_a_sequence() -> None:
    with pytest.raises(TypeError, match="events must be a sequence"):
        encode_events(iter([]))  # type: ignore[arg-type]
