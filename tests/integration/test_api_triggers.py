"""The trigger routes and POST /api/events against a real Postgres: the registry over HTTP
(list, read, stream, create, update with versions, retire, subscriptions, fire with schema
validation, replay) and publishing plain events and CloudEvents, with every refusal's status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowhost.project import Project
from tests.support.api import assert_problem, serving_api
from tests.support.engine import write_functions

FLOWS = """
from flowhost_worker import step

@step(flow="greet", entry=True, isolation="inprocess")
async def greet(data, ctx):
    return data

@step(flow="audit", entry=True, isolation="inprocess")
async def audit(data, ctx):
    return data
"""
FORM = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
}


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return write_functions(tmp_path / "p", {"flows.py": FLOWS})


async def runs_of(project: Project, flow: str) -> list[dict[str, Any]]:
    async with project.database.connection() as conn:
        rows = await (
            await conn.execute("SELECT id, input FROM flowhost.runs WHERE flow = %s", [flow])
        ).fetchall()
    return [dict(row) for row in rows]


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    answer = await client.post("/api/triggers", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == f"/api/triggers/{body['name']}"
    created: dict[str, Any] = answer.json()
    return created


async def test_registry_routes_create_read_update_retire_and_subscribe(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url) as (_, client):
        created = await create(
            client,
            name="signup",
            type="manual",
            config={"schema": FORM, "api_token": "hush"},
            displayName="Sign up",
            subscribe={"greet": "auto"},
        )
        assert created["config"]["api_token"] == "***"  # secrets are redacted
        assert created["subscriptions"] == [{"flow": "greet", "mode": "auto", "source": "api"}]
        await create(client, name="later", type="event", config={"events": "a.*"})
        assert_problem(await client.post("/api/triggers", json={**created, "type": "x"}), 422)
        taken = await client.post("/api/triggers", json={"name": "signup", "type": "manual"})
        assert_problem(taken, 409)

        listed = (await client.get("/api/triggers", params={"limit": 1})).json()
        assert [t["name"] for t in listed["items"]] == ["later"]
        rest = await client.get("/api/triggers", params={"after": listed["next_after"]})
        assert [t["name"] for t in rest.json()["items"]] == ["signup"]
        typed = await client.get("/api/triggers", params={"type": "manual", "status": "active"})
        assert [t["name"] for t in typed.json()["items"]] == ["signup"]
        assert_problem(await client.get("/api/triggers", params={"status": "x"}), 422)
        assert_problem(await client.get("/api/triggers/nope"), 404)
        wrong_method = await client.delete("/api/triggers")
        assert assert_problem(wrong_method, 405)
        assert wrong_method.headers["allow"] == "GET, POST"
        assert_problem(await client.get("/api/events"), 405)

        version = created["version"]
        updated = await client.patch(
            "/api/triggers/signup", json={"version": version, "description": "new"}
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["description"] == "new"
        stale = await client.patch("/api/triggers/signup", json={"version": version})
        assert assert_problem(stale, 409)["version"] == updated.json()["version"]
        bad = await client.patch(
            "/api/triggers/signup",
            json={"version": updated.json()["version"], "config": {"schema": {"type": 3}}},
        )
        assert assert_problem(bad, 422)["errors"][0]["pointer"] == "/config/schema"
        assert_problem(await client.patch("/api/triggers/signup", json={"x": 1}), 422)
        assert_problem(await client.patch("/api/triggers/nope", json={"version": 1}), 404)

        sub = await client.put("/api/triggers/signup/subscriptions/audit", json={"mode": "manual"})
        assert sub.status_code == 200, sub.text
        assert {s["flow"]: s["mode"] for s in sub.json()["subscriptions"]} == {
            "greet": "auto",
            "audit": "manual",
        }
        bad_mode = await client.put("/api/triggers/signup/subscriptions/audit", json={"mode": "x"})
        assert_problem(bad_mode, 422)
        gone = await client.delete("/api/triggers/signup/subscriptions/audit")
        assert [s["flow"] for s in gone.json()["subscriptions"]] == ["greet"]
        assert_problem(await client.delete("/api/triggers/signup/subscriptions/audit"), 404)

        retired = await client.post("/api/triggers/later/retire", json={"reason": "unused"})
        assert retired.json()["status"] == "retired"
        assert retired.json()["retiredReason"] == "unused"
        assert_problem(await client.post("/api/triggers/later/fire", json={"input": {}}), 409)
        assert_problem(await client.put("/api/triggers/later/subscriptions/greet"), 409)
        not_json = await client.post(
            "/api/triggers/later/retire", content=b"x", headers={"content-type": "text/plain"}
        )
        assert_problem(not_json, 415)

        stream = (await client.get("/api/triggers/signup/events", params={"limit": 2})).json()
        assert [e["type"] for e in stream["items"]][:1] == ["trigger.registered"]
        assert stream["has_more"] is True
        more = await client.get(
            "/api/triggers/signup/events", params={"after": stream["next_after"]}
        )
        assert all(e["id"] > stream["next_after"] for e in more.json()["items"])
        assert_problem(await client.get("/api/triggers/signup/events?type=nope"), 422)
        assert_problem(await client.get("/api/triggers/nope/events"), 404)


async def test_fire_validates_the_input_and_answers_the_started_runs(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url) as (project, client):
        await create(
            client,
            name="signup",
            type="manual",
            config={"schema": FORM},
            subscribe={"greet": "auto", "audit": "manual"},
        )
        refused = await client.post("/api/triggers/signup/fire", json={"input": {"age": -1}})
        body = assert_problem(refused, 422)
        assert {(e["location"], e["pointer"]) for e in body["errors"]} == {
            ("body", "/input"),
            ("body", "/input/age"),
        }
        assert await runs_of(project, "greet") == []

        fired = await client.post("/api/triggers/signup/fire", json={"input": {"name": "ada"}})
        assert fired.status_code == 201, fired.text
        runs = fired.json()["runs"]
        assert [r["flow"] for r in runs] == ["greet"]
        assert [str(r["id"]) for r in await runs_of(project, "greet")] == [runs[0]["runId"]]

        chosen = await client.post(
            "/api/triggers/signup/fire", json={"input": {"name": "b"}, "flows": ["audit"]}
        )
        assert [r["flow"] for r in chosen.json()["runs"]] == ["audit"]
        unknown = await client.post(
            "/api/triggers/signup/fire", json={"input": {"name": "b"}, "flows": ["nope"]}
        )
        assert_problem(unknown, 422)
        assert_problem(await client.post("/api/triggers/nope/fire", json={}), 404)
        malformed = await client.post(
            "/api/triggers/signup/fire",
            content=b"{",
            headers={"content-type": "application/json"},
        )
        assert_problem(malformed, 400)

        replayed = await client.post(
            "/api/triggers/signup/replay", json={"last": 1, "flows": ["greet"]}
        )
        assert replayed.status_code == 201, replayed.text
        assert len(replayed.json()["fires"]) == 1
        assert len(await runs_of(project, "greet")) == 2
        assert_problem(await client.post("/api/triggers/signup/replay", json={}), 422)
        assert_problem(await client.post("/api/triggers/nope/replay", json={"last": 1}), 404)


async def test_routes_need_the_admin_token(project_dir: Path, database_url: str) -> None:
    async with serving_api(project_dir, database_url, token=None) as (_, client):
        assert_problem(await client.get("/api/triggers"), 401)
        assert_problem(await client.post("/api/events", json={"name": "a", "payload": {}}), 401)


def cloud_event(kind: str, n: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"e{n}", "source": "/t", "type": kind, "data": {"n": n}}


async def test_published_events_fire_event_triggers_in_one_transaction(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url) as (project, client):
        await create(
            client,
            name="orders",
            type="event",
            config={"events": "order.*"},
            subscribe={"greet": "auto"},
        )
        plain = await client.post("/api/events", json={"name": "order.placed", "payload": {"a": 1}})
        assert plain.status_code == 202, plain.text
        [outcome] = plain.json()["events"]
        assert outcome["name"] == "order.placed" and outcome["id"] is None
        [fire] = outcome["fired"]
        assert fire["trigger"] == "orders"
        runs = await runs_of(project, "greet")
        assert [str(r["id"]) for r in runs] == [fire["runs"][0]["runId"]]
        assert runs[0]["input"] == {"a": 1}
        quiet = await client.post("/api/events", json={"name": "other.thing"})
        assert quiet.json()["events"][0]["fired"] == []

        binary = await client.post(
            "/api/events",
            content=b'{"x": 1}',
            headers={
                "content-type": "application/json",
                "ce-specversion": "1.0",
                "ce-id": "b1",
                "ce-source": "/shop",
                "ce-type": "order.shipped",
            },
        )
        assert binary.status_code == 202, binary.text
        assert binary.json()["events"][0]["id"] == "b1"
        batch = await client.post(
            "/api/events",
            content=json.dumps([cloud_event("order.a", 1), cloud_event("order.b", 2)]),
            headers={"content-type": "application/cloudevents-batch+json"},
        )
        assert batch.status_code == 202, batch.text
        assert [len(e["fired"]) for e in batch.json()["events"]] == [1, 1]
        assert len(await runs_of(project, "greet")) == 4

        # A batch with one bad event publishes none of them.
        half_bad = await client.post(
            "/api/events",
            content=json.dumps([cloud_event("order.c", 3), cloud_event("order..d", 4)]),
            headers={"content-type": "application/cloudevents-batch+json"},
        )
        assert assert_problem(half_bad, 422)["errors"][0]["pointer"] == "/1/type"
        missing = await client.post(
            "/api/events",
            content=json.dumps([cloud_event("order.c", 3), {"specversion": "1.0", "id": "x"}]),
            headers={"content-type": "application/cloudevents-batch+json"},
        )
        assert assert_problem(missing, 400)["attribute"] in {"source", "type"}
        assert len(await runs_of(project, "greet")) == 4
        async with project.database.connection() as conn:
            fires = await (
                await conn.execute(
                    "SELECT count(*) AS n FROM flowhost.trigger_events WHERE type = 'trigger.fired'"
                )
            ).fetchone()
        assert fires is not None and fires["n"] == 4

        xml = await client.post(
            "/api/events", content=b"<a/>", headers={"content-type": "application/xml"}
        )
        assert_problem(xml, 415)
        bad_name = await client.post("/api/events", json={"name": "a.#", "payload": {}})
        assert assert_problem(bad_name, 422)["errors"][0]["pointer"] == "/name"
        assert_problem(await client.post("/api/events", json={"payload": {}}), 422)
        assert_problem(
            await client.post(
                "/api/events", content=b"{", headers={"content-type": "application/json"}
            ),
            400,
        )
        too_big = await client.post("/api/events", json={"name": "a", "payload": "x" * 2_000_000})
        assert_problem(too_big, 413)
