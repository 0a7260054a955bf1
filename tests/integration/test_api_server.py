"""The HTTP server's envelope, against a real Postgres: health probes, the admin token, body
limits, and every refusal as an RFC 9457 problem with its status; the OpenAPI document."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, HTTPException
from openapi_spec_validator import validate

from flowhost.api import routes
from flowhost.store import reads
from tests.support.api import TOKEN, api_client, assert_problem, serving_api
from tests.support.databases import drop_database
from tests.support.engine import write_functions

GREET = """
from flowhost_worker import step

@step(flow="greet", entry=True, isolation="inprocess")
async def hello(data, ctx):
    return {"hello": data.get("name")}
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return write_functions(tmp_path, {"greet.py": GREET})


# -- health -----------------------------------------------------------------------------------


async def test_health_probes_are_open_and_readyz_needs_the_schema(
    project_dir: Path, database_url: str, admin_url: str
) -> None:
    async with serving_api(project_dir, database_url, token=None) as (project, client):
        alive = await client.get("/healthz")
        ready = await client.get("/readyz")
        async with project.database.connection() as conn:
            await conn.execute(
                "DELETE FROM flowhost.schema_migrations WHERE version = "
                "(SELECT max(version) FROM flowhost.schema_migrations)"
            )
        pending = await client.get("/readyz")
        still_alive = await client.get("/healthz")
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready" and ready.json()["schema_version"] >= 7
    body = assert_problem(pending, 503)
    assert "migrations are pending" in body["detail"]
    assert pending.headers["retry-after"] == "5"
    assert still_alive.status_code == 200


async def test_a_database_that_is_gone_is_503_everywhere_but_healthz(
    project_dir: Path, admin_url: str, database_url: str
) -> None:
    name = database_url.rsplit("dbname=", 1)[-1].split()[0]
    async with serving_api(project_dir, database_url) as (_project, client):
        drop_database(admin_url, name)
        answers = {
            "ready": await client.get("/readyz"),
            "runs": await client.get("/api/runs"),
            "start": await client.post("/api/runs", json={"flow": "greet"}),
        }
        alive = await client.get("/healthz")
    for answer in answers.values():
        assert_problem(answer, 503)
        assert answer.headers["retry-after"]
    assert alive.status_code == 200


# -- the admin token --------------------------------------------------------------------------


async def test_every_api_route_needs_the_token_but_docs_and_probes_do_not(
    project_dir: Path, database_url: str
) -> None:
    run_id = uuid.uuid4()
    guarded = [
        ("GET", "/api/flows"),
        ("GET", "/api/flows/greet"),
        ("GET", "/api/runs"),
        ("GET", "/api/runs/parked"),
        ("GET", f"/api/runs/{run_id}"),
        ("GET", f"/api/runs/{run_id}/events"),
        ("GET", f"/api/runs/{run_id}/state"),
        ("GET", f"/api/runs/{run_id}/awaits"),
        ("POST", "/api/runs"),
        ("POST", "/api/runs/migrate"),
        ("POST", f"/api/runs/{run_id}/cancel"),
        ("POST", f"/api/runs/{run_id}/restart"),
        ("POST", f"/api/runs/{run_id}/replay"),
        ("POST", f"/api/runs/{run_id}/retry"),
        ("GET", "/api/nothing-here"),
        ("GET", "/api"),
    ]
    async with serving_api(project_dir, database_url, token=None) as (project, anonymous):
        missing = [await anonymous.request(m, p, json={"flow": "greet"}) for m, p in guarded]
        # A malformed body is not even read without the token.
        malformed = await anonymous.post(
            "/api/runs", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        wrong = [
            await anonymous.get("/api/runs", headers={"Authorization": value})
            for value in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", "")
        ]
        open_routes = [
            await anonymous.get(p)
            for p in ("/healthz", "/readyz", "/api/openapi.json", "/api/docs")
        ]
        async with api_client(project) as client:
            allowed = await client.get("/api/runs")
            # The scheme's name is case-insensitive.
            lower = await client.get("/api/runs", headers={"Authorization": f"bearer {TOKEN}"})
    for answer in [*missing, malformed]:
        body = assert_problem(answer, 401)
        assert answer.headers["www-authenticate"] == 'Bearer realm="flowhost"'
        assert TOKEN not in answer.text
        assert body["detail"].startswith("this route needs the admin token")
    for answer in wrong:
        assert_problem(answer, 401)
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert wrong[0].headers["www-authenticate"].endswith('error="invalid_token"')
    assert [r.status_code for r in open_routes] == [200, 200, 200, 200]
    assert open_routes[3].headers["content-type"].startswith("text/html")
    assert allowed.status_code == 200 and lower.status_code == 200


async def test_without_a_token_set_the_admin_api_is_off(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url, api_token=None) as (_project, client):
        off = await client.get("/api/runs")
        ready = await client.get("/readyz")
    assert "api_token" in assert_problem(off, 403)["detail"]
    assert ready.status_code == 200


# -- refusals ---------------------------------------------------------------------------------


async def test_each_bad_request_is_a_problem_with_its_status(
    project_dir: Path, database_url: str
) -> None:
    unknown = uuid.uuid4()
    async with serving_api(project_dir, database_url) as (_project, client):
        answers = {
            "no run": await client.get(f"/api/runs/{unknown}"),
            "no run events": await client.get(f"/api/runs/{unknown}/events"),
            "no run state": await client.get(f"/api/runs/{unknown}/state"),
            "no run to cancel": await client.post(f"/api/runs/{unknown}/cancel"),
            "no flow": await client.get("/api/flows/nothing"),
            "no route": await client.get("/api/nothing"),
            "no route outside api": await client.get("/nothing"),
            "method": await client.delete("/api/runs"),
            "malformed": await client.post(
                "/api/runs",
                content=b'{"flow": "greet",',
                headers={"Content-Type": "application/json"},
            ),
            "not json": await client.post(
                "/api/runs", content=b"flow=greet", headers={"Content-Type": "text/plain"}
            ),
            "form": await client.post("/api/runs", data={"flow": "greet"}),
            "invalid": await client.post(
                "/api/runs",
                json={"flow": "", "priority": 5000, "delay": -1, "colour": "red"},
            ),
            "no body": await client.post("/api/runs"),
            "unknown flow": await client.post("/api/runs", json={"flow": "nothing"}),
            "two options": await client.post(
                "/api/runs",
                json={"flow": "greet", "delay": 5, "start_at": "2030-01-01T00:00:00Z"},
            ),
            "naive start_at": await client.post(
                "/api/runs", json={"flow": "greet", "start_at": "2030-01-01T00:00:00"}
            ),
            "nul in input": await client.post(
                "/api/runs", json={"flow": "greet", "input": {"x": "a\u0000b"}}
            ),
            "bad query": await client.get("/api/runs", params={"limit": 0, "status": "x"}),
            "bad cursor": await client.get("/api/runs", params={"cursor": "!!"}),
            "bad id": await client.get("/api/runs/not-a-uuid"),
            "bad at": await client.get(f"/api/runs/{unknown}/state", params={"at": 0}),
            "migrate both": await client.post(
                "/api/runs/migrate", json={"flow": "greet", "run_id": str(unknown)}
            ),
        }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "no run": 404,
        "no run events": 404,
        "no run state": 404,
        "no run to cancel": 404,
        "no flow": 404,
        "no route": 404,
        "no route outside api": 404,
        "method": 405,
        "malformed": 400,
        "not json": 415,
        "form": 415,
        "invalid": 422,
        "no body": 422,
        "unknown flow": 422,
        "two options": 422,
        "naive start_at": 422,
        "nul in input": 422,
        "bad query": 422,
        "bad cursor": 422,
        "bad id": 422,
        "bad at": 422,
        "migrate both": 422,
    }
    bodies = {name: assert_problem(answer, statuses[name]) for name, answer in answers.items()}
    assert answers["method"].headers["allow"] == "GET, POST"
    assert answers["not json"].headers["accept"] == "application/json"
    assert "not valid JSON" in bodies["malformed"]["detail"]
    assert "unknown flow 'nothing'" in bodies["no flow"]["detail"]
    errors = {(e["location"], e["pointer"]) for e in bodies["invalid"]["errors"]}
    assert errors == {
        ("body", "/flow"),
        ("body", "/priority"),
        ("body", "/delay"),
        ("body", "/colour"),
    }
    assert bodies["no body"]["errors"] == [
        {"location": "body", "pointer": "", "message": "Field required"}
    ]
    [unknown_flow] = bodies["unknown flow"]["errors"]
    assert unknown_flow["pointer"] == "/flow"
    assert unknown_flow["message"] == "unknown flow 'nothing' (flows: greet)"
    assert "give delay or start_at, not both" in bodies["two options"]["errors"][0]["message"]
    assert bodies["naive start_at"]["errors"][0]["pointer"] == "/start_at"
    assert "NUL" in bodies["nul in input"]["errors"][0]["message"]
    assert {(e["location"], e["pointer"]) for e in bodies["bad query"]["errors"]} == {
        ("query", "/limit"),
        ("query", "/status"),
    }
    assert bodies["bad cursor"]["errors"][0]["pointer"] == "/cursor"
    assert bodies["bad id"]["errors"][0] == {
        "location": "path",
        "pointer": "/run_id",
        "message": bodies["bad id"]["errors"][0]["message"],
    }
    # No problem echoes the values it refuses.
    assert "a\\u0000b" not in answers["nul in input"].text
    assert "red" not in answers["invalid"].text


async def test_conflicts_are_409(project_dir: Path, database_url: str) -> None:
    async with serving_api(project_dir, database_url) as (project, client):
        started = await client.post("/api/runs", json={"flow": "greet"})
        run = started.json()["id"]
        canceled = await client.post(f"/api/runs/{run}/cancel", json={"reason": "test"})
        again = await client.post(f"/api/runs/{run}/cancel")
        retry = await client.post(f"/api/runs/{run}/retry")
        replay = await client.post(f"/api/runs/{run}/replay", json={"from_step": "hello"})
        migrate = await client.post("/api/runs/migrate", json={"run_id": run})
        async with project.database.connection() as conn:
            status = (await reads.get_run(conn, uuid.UUID(run)))["status"]
    assert started.status_code == 201 and canceled.status_code == 200
    assert "only a queued, running, awaiting or stalled run" in assert_problem(again, 409)["detail"]
    assert "only a failed or stalled run can be retried" in assert_problem(retry, 409)["detail"]
    assert "never started" in assert_problem(replay, 409)["detail"]
    assert "only live runs move" in assert_problem(migrate, 409)["detail"]
    assert status == "canceled"


async def test_bodies_over_the_limit_are_413_before_they_are_read(
    project_dir: Path, database_url: str
) -> None:
    limit = 2000
    big = b'{"flow": "greet", "input": "' + b"x" * limit + b'"}'
    read: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            read.append(1)
            yield b" " * 500

    async with serving_api(project_dir, database_url, max_body_bytes=limit) as (project, client):
        declared = await client.post(
            "/api/runs", content=big, headers={"Content-Type": "application/json"}
        )
        streamed = await client.post(
            "/api/runs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        hook = await client.post(f"/hooks/await/{'a' * 43}", content=chunks())
        fits = await client.post("/api/runs", json={"flow": "greet", "input": "x" * (limit // 2)})
        async with project.database.connection() as conn:
            runs = await reads.list_runs(conn)
    assert "larger than 2000 bytes" in assert_problem(declared, 413)["detail"]
    assert_problem(streamed, 413)
    assert_problem(hook, 413)
    assert fits.status_code == 201
    # Refused after 5 chunks of 500 bytes of each of the two streams, not after all 100.
    assert len(read) <= 2 * 6
    assert len(runs) == 1


@contextlib.contextmanager
def extra_router(router: APIRouter) -> Iterator[None]:
    routes.ROUTERS.append(router)
    try:
        yield
    finally:
        routes.ROUTERS.remove(router)


async def test_route_modules_get_the_same_errors(
    project_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a future module of routes raises is answered like the others: 410, 429 with its
    Retry-After, and an unexpected exception as a 500 that says nothing of it. A path it
    declares open does without the admin token."""
    router = APIRouter(prefix="/api/test")
    monkeypatch.setattr(routes, "OPEN_API_PATHS", frozenset({"/api/test/open"}))

    @router.get("/open")
    async def open_route() -> dict[str, str]:
        return {"open": "yes"}

    @router.get("/gone")
    async def gone() -> None:
        raise HTTPException(410, "it was here")

    @router.get("/busy")
    async def busy() -> None:
        raise HTTPException(429, "slow down", headers={"Retry-After": "3"})

    @router.get("/broken")
    async def broken() -> None:
        raise RuntimeError("secret internals")

    with extra_router(router):
        async with serving_api(project_dir, database_url, raise_app_exceptions=False) as (
            _,
            client,
        ):
            answers = [await client.get(f"/api/test/{p}") for p in ("gone", "busy", "broken")]
            anonymous = await client.get("/api/test/gone", headers={"Authorization": ""})
            opened = await client.get("/api/test/open", headers={"Authorization": ""})
    assert_problem(answers[0], 410)
    assert assert_problem(answers[1], 429)["detail"] == "slow down"
    assert answers[1].headers["retry-after"] == "3"
    assert assert_problem(answers[2], 500)["detail"] == "the request failed on the server"
    assert "secret" not in answers[2].text
    assert_problem(anonymous, 401)
    assert opened.json() == {"open": "yes"}


# -- OpenAPI ----------------------------------------------------------------------------------


async def test_the_openapi_document_is_valid_and_lists_every_route(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url, token=None) as (_project, client):
        answer = await client.get("/api/openapi.json")
    document = answer.json()
    validate(document)
    paths = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert paths == {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/api/flows"),
        ("GET", "/api/flows/{name}"),
        ("GET", "/api/runs"),
        ("POST", "/api/runs"),
        ("GET", "/api/runs/parked"),
        ("POST", "/api/runs/migrate"),
        ("GET", "/api/runs/{run_id}"),
        ("GET", "/api/runs/{run_id}/awaits"),
        ("GET", "/api/runs/{run_id}/events"),
        ("GET", "/api/runs/{run_id}/state"),
        ("POST", "/api/runs/{run_id}/cancel"),
        ("POST", "/api/runs/{run_id}/restart"),
        ("POST", "/api/runs/{run_id}/replay"),
        ("POST", "/api/runs/{run_id}/retry"),
        ("GET", "/api/runs/{run_id}/stream"),
        ("GET", "/api/stream"),
        ("GET", "/api/triggers"),
        ("POST", "/api/triggers"),
        ("GET", "/api/triggers/{name}"),
        ("PATCH", "/api/triggers/{name}"),
        ("GET", "/api/triggers/{name}/events"),
        ("POST", "/api/triggers/{name}/retire"),
        ("PUT", "/api/triggers/{name}/subscriptions/{flow}"),
        ("DELETE", "/api/triggers/{name}/subscriptions/{flow}"),
        ("POST", "/api/triggers/{name}/fire"),
        ("POST", "/api/triggers/{name}/replay"),
        ("GET", "/api/schedules"),
        ("GET", "/api/schedules/{name}"),
        ("PATCH", "/api/schedules/{name}"),
        ("GET", "/api/schedules/{name}/next"),
        ("GET", "/api/schedules/{name}/fires"),
        ("GET", "/api/schedules/{name}/lag"),
        ("POST", "/api/schedules/{name}/enable"),
        ("POST", "/api/schedules/{name}/disable"),
        ("GET", "/api/connectors"),
        ("GET", "/api/connectors/{name}"),
        ("POST", "/api/events"),
    }
    schemes = document["components"]["securitySchemes"]
    assert schemes["adminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["adminToken"]["description"],
    }
    start = document["paths"]["/api/runs"]["post"]
    assert start["security"] == [{"adminToken": []}]
    assert {"201", "200", "400", "413", "415", "422"} <= set(start["responses"])
    assert "security" not in document["paths"]["/healthz"]["get"]
