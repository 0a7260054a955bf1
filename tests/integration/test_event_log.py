"""Appending events by binary COPY: what Postgres stores equals what a plain INSERT stores."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from flowhost._core import InvalidArgumentError, encode_events
from flowhost.db.database import Database
from flowhost.db.queries import QUERIES
from flowhost.store.events import NewEvent, append_events, events_of_run

# JSON text that jsonb accepts: no NUL characters (and no lone surrogates, which have no UTF-8).
TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=20)
JSON_DATA = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
EVENT = st.tuples(
    TEXT.filter(bool),
    st.none() | TEXT,
    st.none() | st.integers(min_value=-(2**31), max_value=2**31 - 1),
    JSON_DATA,
)

STORED = (
    "SELECT type, step, attempt, data::text AS data FROM flowhost.events "
    "WHERE run_id = %s ORDER BY id"
)
INSERT = (
    "INSERT INTO flowhost.events (run_id, type, step, attempt, data) "
    "VALUES (%s, %s, %s, %s, %s::jsonb)"
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(EVENT, min_size=1, max_size=6))
def test_copy_stores_what_insert_stores(
    database_url: str, events: list[tuple[str, str | None, int | None, Any]]
) -> None:
    copied, inserted = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        with conn.transaction():
            stream = encode_events([(copied, *event) for event in events])
            with conn.cursor().copy(QUERIES["copy_events"]) as copy:
                copy.write(stream)
            conn.cursor().executemany(
                INSERT, [(inserted, t, s, a, json.dumps(d)) for t, s, a, d in events]
            )
        by_copy = conn.execute(STORED, [copied]).fetchall()
        by_insert = conn.execute(STORED, [inserted]).fetchall()
    assert by_copy == by_insert


@pytest.mark.parametrize("pipeline", [False, True], ids=["copy", "pipeline"])
async def test_append_events_keeps_order_and_fields(database: Database, pipeline: bool) -> None:
    run_id = uuid.uuid4()
    events = [
        NewEvent(run_id, "step.started", {}, "charge", 1),
        NewEvent(
            run_id, "log", {"message": "charged", "amount": 25.5, "tags": ["a", "b"]}, "charge", 1
        ),
        NewEvent(run_id, "flow.completed", {"result": None}),
    ]
    async with database.transaction(pipeline=pipeline) as conn:
        await append_events(conn, events)
    async with database.connection() as conn:
        stored = await events_of_run(conn, run_id)
    assert [(e.type, e.step, e.attempt, e.data) for e in stored] == [
        (e.type, e.step, e.attempt, e.data) for e in events
    ]


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"ok": 1, "bad": object()}, TypeError, "events[1]: data['bad']: an object of type object"),
        ({"nested": [1, {"x": float("nan")}]}, ValueError, "events[1]: data['nested'][1]['x']"),
        ({"text": "a\0b"}, InvalidArgumentError, "NUL"),
        ({1: "int key"}, TypeError, "keys must be str"),
    ],
)
async def test_bad_data_raises_before_anything_is_written(
    database: Database, data: Any, error: type[Exception], message: str
) -> None:
    run_id = uuid.uuid4()
    events = [NewEvent(run_id, "log", {"fine": True}), NewEvent(run_id, "log", data)]
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        async with database.transaction() as conn:
            await append_events(conn, events)
    async with database.connection() as conn:
        assert await events_of_run(conn, run_id) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ok": 1, "bad": object()}, "must be JSON-serialisable"),
        ({"nested": [1, {"x": float("nan")}]}, "must be JSON-serialisable"),
        ({"text": "a\0b"}, "must not contain NUL characters"),
        ({"text": "\ud800"}, "must not contain lone surrogates"),
    ],
)
async def test_bad_data_in_a_pipeline_raises_before_anything_is_written(
    database: Database, data: Any, message: str
) -> None:
    # In pipeline mode the events go as an INSERT of JSON text, not the encoder's COPY: the
    # same data is refused, with the event's type named.
    run_id = uuid.uuid4()
    events = [NewEvent(run_id, "log", {"fine": True}), NewEvent(run_id, "log", data)]
    with pytest.raises(TypeError, match=f"the data of a log event {message}"):
        async with database.transaction(pipeline=True) as conn:
            await append_events(conn, events)
    async with database.connection() as conn:
        assert await events_of_run(conn, run_id) == []
