"""What step code may store, and how logs and errors are made storable."""

from __future__ import annotations

import math

import pytest

from flowhost.store.json_data import as_json, as_loose_json, storable_text


def test_json_data_passes_through_unchanged() -> None:
    value = {"a": [1, 2.5, None, True, "é😀"], "b": {"c": "back\\\\u0000slash"}}
    assert as_json(value, "the result") == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": "a\0b"}, "the result must not contain NUL characters"),
        (["\\\0"], "must not contain NUL"),
        ({"x": "\ud800"}, "must not contain lone surrogates"),
        ({"x": math.nan}, "must be JSON-serialisable"),
        ({"x": object()}, "must be JSON-serialisable"),
    ],
)
def test_what_postgres_cannot_store_is_a_type_error(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        as_json(value, "the result")


def test_a_literal_backslash_u0000_is_not_mistaken_for_nul() -> None:
    assert as_json("\\u0000", "x") == "\\u0000"
    assert as_json("\\\\u0000", "x") == "\\\\u0000"


def test_loose_json_never_fails_and_keeps_what_it_can() -> None:
    loose = as_loose_json(
        {
            "nul": "a\0b",
            "nan": math.nan,
            "inf": -math.inf,
            "obj": {1, 2},
            "half": "\ud800!",
            "ok": 1,
        }
    )
    assert loose == {
        "nul": "a\ufffdb",
        "nan": "NaN",
        "inf": "-Infinity",
        "obj": "{1, 2}",
        "half": "?!",
        "ok": 1,
    }


def test_storable_text_replaces_nul_and_lone_surrogates() -> None:
    assert storable_text("plain") == "plain"
    assert storable_text("a\0b\ud800c") == "a\ufffdb?c"
