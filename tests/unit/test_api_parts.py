"""The API's pure parts: bearer tokens, JSON media types, run list cursors, field errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from flowhost.api.auth import bearer_token
from flowhost.api.errors import field_error
from flowhost.api.limits import declared_too_large, is_json
from flowhost.api.paging import BadCursor, decode_cursor, encode_cursor


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (b"Bearer abc", b"abc"),
        (b"bearer   abc ", b"abc"),
        (b"BEARER abc", b"abc"),
        (b"Basic abc", None),
        (b"Bearer", None),
        (b"Bearer ", None),
        (b"", None),
    ],
)
def test_bearer_tokens(header: bytes, token: bytes | None) -> None:
    assert bearer_token([(b"authorization", header)]) == token
    assert bearer_token([(b"x-other", b"Bearer abc")]) is None


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/cloudevents+json", True),
        ("application/problem+json", True),
        ("text/json", False),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("application/jsonx", False),
        ("", False),
        (None, False),
    ],
)
def test_json_media_types(content_type: str | None, expected: bool) -> None:
    assert is_json(content_type) is expected


def test_declared_length_over_the_limit() -> None:
    assert declared_too_large([(b"content-length", b"11")], 10)
    assert not declared_too_large([(b"content-length", b"10")], 10)
    assert not declared_too_large([(b"content-length", b"x")], 10)
    assert not declared_too_large([], 10)


def test_cursors_round_trip_and_refuse_anything_else() -> None:
    position = (datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), uuid.uuid4())
    cursor = encode_cursor(position)
    assert "=" not in cursor and decode_cursor(cursor) == position
    for bad in ("", "!!", "bm9wZQ", encode_cursor(position)[:-3], "MjAzMC0wMS0wMlQwMzowNHx4"):
        with pytest.raises(BadCursor):
            decode_cursor(bad)


def test_field_errors_point_into_their_location() -> None:
    error = {"loc": ("body", "input", "a/b~c", 0), "msg": "bad", "input": "secret"}
    assert field_error(error) == {
        "location": "body",
        "pointer": "/input/a~1b~0c/0",
        "message": "bad",
    }
    assert field_error({"loc": ("query", "limit"), "msg": "x"})["pointer"] == "/limit"
