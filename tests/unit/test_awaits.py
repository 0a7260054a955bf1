"""The pure parts of awaits: JSON Pointers, match values, webhook bodies, job payloads, problem
documents and HTTP addresses."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from flowhost.api.problems import PROBLEM_MEDIA_TYPE, problem
from flowhost.engine.await_resolution import AwaitSchemaError, read_body, schema_errors
from flowhost.engine.awaits import (
    json_pointer,
    next_fire,
    resolve_match,
    resolve_url,
)
from flowhost.engine.definitions import AwaitDefinition
from flowhost.errors import ConfigurationError
from flowhost.queue.jobs import HookJob, PublishJob, ReleaseJob, StepJob, decode_job
from flowhost.settings import parse_http_address

DOCUMENT = {"order": {"id": "A-7", "lines": [{"sku": "X"}]}, "a/b": 1, "m~n": 2, "": 3}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("", (True, DOCUMENT)),
        ("/order/id", (True, "A-7")),
        ("/order/lines/0/sku", (True, "X")),
        ("/a~1b", (True, 1)),
        ("/m~0n", (True, 2)),
        ("/", (True, 3)),
        ("/order/lines/1", (False, None)),
        ("/order/lines/01", (False, None)),
        ("/order/lines/-", (False, None)),
        ("/order/id/x", (False, None)),
        ("/nope", (False, None)),
        ("order", (False, None)),
    ],
)
def test_json_pointer_follows_rfc_6901(pointer: str, expected: tuple[bool, object]) -> None:
    assert json_pointer(DOCUMENT, pointer) == expected


def test_match_values_come_from_the_subject_and_missing_ones_are_listed() -> None:
    values, unresolved = resolve_match({"order_id": "/order/id", "x": "/missing"}, DOCUMENT)
    assert values == {"order_id": "A-7", "x": None}
    assert unresolved == ["x"]
    assert resolve_match(None, DOCUMENT) == ({}, [])


def test_a_schedule_resolves_at_the_next_fire_in_its_time_zone() -> None:
    daily = AwaitDefinition(type="schedule", cron="30 2 * * *", timezone="America/New_York")
    fire = next_fire(daily, datetime(2024, 3, 5, 12, tzinfo=UTC))
    assert fire is not None and fire.astimezone(UTC) == datetime(2024, 3, 6, 7, 30, tzinfo=UTC)


def test_resolve_urls_without_a_public_url_are_paths() -> None:
    assert resolve_url("https://flows.example.com/", "tok") == (
        "https://flows.example.com/hooks/await/tok"
    )
    assert resolve_url(None, "tok") == "/hooks/await/tok"


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_webhook_bodies_are_json_checked_against_the_schema() -> None:
    assert read_body(b'{"n": 1}', {}, SCHEMA) == (None, {"n": 1}, ())
    assert read_body(b"", {"a": "1"}, None) == (None, {"a": "1"}, ())
    problem_text, _, _ = read_body(b"{nope", {}, None)
    assert problem_text is not None and problem_text.startswith("the body is not JSON")
    assert read_body(b"NaN", {}, None)[0] is not None
    assert read_body(b'"\\u0000"', {}, None)[0] is not None
    assert read_body(b'{"n": "x"}', {}, SCHEMA) == (
        "the body does not match the await's schema",
        None,
        ({"pointer": "/n", "message": "'x' is not of type 'integer'"},),
    )


def test_an_invalid_schema_is_the_awaits_fault() -> None:
    with pytest.raises(AwaitSchemaError):
        schema_errors({"type": 12}, {})


def test_every_job_kind_round_trips_through_its_payload() -> None:
    run_id = uuid.uuid4()
    jobs = [
        StepJob(run_id, "f", "s", 2),
        HookJob(run_id, "f", "s", "before", "register", "mail", 1, {"kind": "register"}, 2),
        ReleaseJob(run_id, "f", "s"),
        PublishJob("paid", {"order": 1}, ((7, run_id),)),
    ]
    assert [decode_job(job.encode()) for job in jobs] == jobs
    with pytest.raises(ValueError, match="not a flowhost job"):
        decode_job(json.dumps({"kind": "mystery"}).encode())


def test_problems_are_rfc_9457_documents() -> None:
    response = problem(405, "POST only", headers={"Allow": "POST"}, step="approve", none=None)
    assert response.media_type == PROBLEM_MEDIA_TYPE
    assert response.headers["allow"] == "POST"
    assert json.loads(response.body) == {
        "type": "about:blank",
        "title": "Method Not Allowed",
        "status": 405,
        "detail": "POST only",
        "step": "approve",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8000", ("127.0.0.1", 8000)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:0", ("::1", 0)),
    ],
)
def test_http_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_http_address(text) == expected


@pytest.mark.parametrize("text", ["host:", "x", "1:99999"])
def test_bad_http_addresses_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_http_address(text)
