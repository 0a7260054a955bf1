"""`/hooks/{trigger}` against a real Postgres: signed deliveries start runs (answered after the
commit), repeated deliveries get the first answer and start nothing (also at once), and every
refusal has its status: 400, 401, 403, 404, 405, 410, 413, 415, 422, 429 (with Retry-After),
500 for a config this host cannot use, 503 when the database dies mid-request."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from flowhost import metrics
from flowhost.project import Project
from tests.support.api import assert_problem, serving_api
from tests.support.engine import write_functions

FLOWS = """
from flowhost_worker import step

@step(flow="greet", entry=True, isolation="inprocess")
async def greet(data, ctx):
    return data
"""
SECRET = "github-webhook-secret"
GITHUB = {"scheme": "github", "secret": SECRET}


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return write_functions(tmp_path / "p", {"flows.py": FLOWS})


def signed(body: bytes, delivery: str | None = None, **headers: str) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        **headers,
    }


async def hook(client: httpx.AsyncClient, name: str, **config: Any) -> None:
    answer = await client.post(
        "/api/triggers",
        json={"name": name, "type": "webhook", "config": config, "subscribe": {"greet": "auto"}},
    )
    assert answer.status_code == 201, answer.text


async def runs(project: Project) -> list[dict[str, Any]]:
    async with project.database.connection() as conn:
        rows = await (
            await conn.execute("SELECT id, input FROM flowhost.runs ORDER BY created_at")
        ).fetchall()
    return [dict(row) for row in rows]


async def test_a_signed_delivery_starts_a_run_with_the_request_and_repeats_start_nothing(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url) as (project, client):
        await hook(client, "push", auth=GITHUB)
        body = b'{"ref": "main", "n": 1}'
        headers = signed(body, "d-1", Authorization="Bearer not-for-runs")
        first = await client.post("/hooks/push?x=1&x=2&y=3", content=body, headers=headers)
        assert first.status_code == 202, first.text
        [run] = await runs(project)
        assert first.json()["runs"] == [{"flow": "greet", "runId": str(run["id"])}]
        payload = run["input"]
        assert payload["body"] == {"ref": "main", "n": 1}
        assert payload["bodyEncoding"] == "json"
        assert payload["method"] == "POST" and payload["deliveryId"] == "d-1"
        assert payload["query"] == {"x": ["1", "2"], "y": "3"}
        assert payload["headers"]["x-github-event"] == "push"
        assert "x-hub-signature-256" not in payload["headers"]
        assert "authorization" not in payload["headers"]

        acks = metrics.REGISTRY.get_sample_value(
            "flowhost_webhook_ack_seconds_count", {"route": "trigger", "status": "202"}
        )
        assert acks is not None and acks >= 1
        again = await client.post("/hooks/push?x=1&x=2&y=3", content=body, headers=headers)
        assert (again.status_code, again.content) == (first.status_code, first.content)
        assert again.headers["flowhost-duplicate"] == "true"
        assert len(await runs(project)) == 1

        # Two identical deliveries at the same time: one run, the same answer.
        twins = signed(body, "d-2")
        a, b = await asyncio.gather(
            client.post("/hooks/push", content=body, headers=twins),
            client.post("/hooks/push", content=body, headers=twins),
        )
        assert a.status_code == b.status_code == 202
        assert a.content == b.content
        assert len(await runs(project)) == 2

        # Many at once share transactions (group commit), each answered with its own run.
        answers = await asyncio.gather(
            *(client.post("/hooks/push", content=body, headers=signed(body)) for _ in range(30))
        )
        ids = {a.json()["runs"][0]["runId"] for a in answers if a.status_code == 202}
        assert len(ids) == 30
        assert ids <= {str(r["id"]) for r in await runs(project)}


async def test_every_refusal_has_its_status(project_dir: Path, database_url: str) -> None:
    async with serving_api(project_dir, database_url, max_body_bytes=2048) as (project, client):
        await hook(
            client,
            "strict",
            auth=GITHUB,
            methods=["POST", "PUT"],
            content_types=["application/json"],
            schema={
                "type": "object",
                "properties": {"body": {"type": "object", "required": ["ref"]}},
            },
        )
        body = b'{"ref": "x"}'
        assert_problem(await client.post("/hooks/nope", content=body, headers=signed(body)), 404)
        wrong = await client.get("/hooks/strict")
        assert_problem(wrong, 405)
        assert wrong.headers["allow"] == "POST, PUT"
        forged = signed(body)
        forged["X-Hub-Signature-256"] = "sha256=" + "0" * 64
        assert assert_problem(
            await client.post("/hooks/strict", content=body, headers=forged), 401
        )["reason"]
        unsigned = {"Content-Type": "application/json"}
        assert_problem(await client.post("/hooks/strict", content=body, headers=unsigned), 401)
        text = signed(body, **{"Content-Type": "text/plain"})
        refused = await client.post("/hooks/strict", content=body, headers=text)
        assert assert_problem(refused, 415).get("detail")
        assert refused.headers["accept"] == "application/json"
        big = b'{"ref": "' + b"x" * 3000 + b'"}'
        assert_problem(await client.post("/hooks/strict", content=big, headers=signed(big)), 413)
        bad = b'{"ref": '
        assert_problem(await client.post("/hooks/strict", content=bad, headers=signed(bad)), 400)
        off = b'{"other": 1}'
        mismatch = await client.post("/hooks/strict", content=off, headers=signed(off))
        assert assert_problem(mismatch, 422)["errors"][0]["pointer"] == "/body"
        assert await runs(project) == []

        await hook(client, "bearer", auth={"scheme": "bearer", "secret": "a-long-bearer-token"})
        challenged = await client.post("/hooks/bearer", json={})
        assert_problem(challenged, 401)
        assert challenged.headers["www-authenticate"].startswith("Bearer")
        ok = await client.post(
            "/hooks/bearer", json={}, headers={"Authorization": "Bearer a-long-bearer-token"}
        )
        assert ok.status_code == 202, ok.text

        await hook(client, "office", auth={"scheme": "none", "allow_ips": ["10.0.0.0/8"]})
        assert_problem(await client.post("/hooks/office", json={}), 403)

        await hook(client, "env", auth={"scheme": "github", "secret_env": "FLOWHOST_TEST_UNSET_X"})
        assert_problem(await client.post("/hooks/env", content=body, headers=signed(body)), 500)

        await hook(client, "old", auth={"scheme": "none"})
        retired = await client.post("/api/triggers/old/retire", json={})
        assert retired.status_code == 200
        # Whether the cache still holds it as active or not, the fire refuses a retired one.
        assert_problem(await client.post("/hooks/old", json={}), 410)


async def test_rate_limits_answer_429_with_retry_after(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url) as (_, client):
        await hook(
            client,
            "limited",
            auth={"scheme": "none"},
            dedupe=False,
            rate_limits={"trigger": {"limit": 2, "period": 60}},
        )
        await hook(
            client,
            "tenants",
            auth={"scheme": "none"},
            tenant_key={"pointer": "/org"},
            rate_limits={"tenant": {"limit": 1, "period": 60}},
        )
        await hook(
            client, "by-ip", auth={"scheme": "none"}, rate_limits={"ip": {"limit": 1, "period": 60}}
        )
        statuses = [(await client.post("/hooks/limited", json={})).status_code for _ in range(2)]
        assert statuses == [202, 202]
        limited = await client.post("/hooks/limited", json={})
        assert_problem(limited, 429)
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert (await client.post("/hooks/tenants", json={"org": "a"})).status_code == 202
        assert (await client.post("/hooks/tenants", json={"org": "b"})).status_code == 202
        tenant = await client.post("/hooks/tenants", json={"org": "a"})
        assert_problem(tenant, 429)
        assert "retry-after" in tenant.headers
        assert (await client.post("/hooks/by-ip", json={})).status_code == 202
        assert_problem(await client.post("/hooks/by-ip", json={}), 429)


async def test_webhook_configs_are_checked_field_by_field(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url) as (_, client):
        cases = [
            ({}, "/config/auth"),
            ({"auth": {"scheme": "nope"}}, "/config/auth/scheme"),
            ({"auth": {"scheme": "none"}, "methods": ["BREW"]}, "/config/methods/0"),
            ({"auth": {"scheme": "none"}, "content_types": ["json"]}, "/config/content_types/0"),
            ({"auth": {"scheme": "none"}, "dedupe": {"header": "a b"}}, "/config/dedupe/header"),
            (
                {"auth": {"scheme": "none"}, "tenant_key": {"pointer": "x"}},
                "/config/tenant_key/pointer",
            ),
            (
                {"auth": {"scheme": "none"}, "rate_limits": {"tenant": {"limit": 1}}},
                "/config/rate_limits/tenant",
            ),
            ({"auth": {"scheme": "none"}, "rate_limit": {}}, "/config/rate_limit"),
        ]
        for config, pointer in cases:
            answer = await client.post(
                "/api/triggers", json={"name": "w", "type": "webhook", "config": config}
            )
            assert assert_problem(answer, 422)["errors"][0]["pointer"] == pointer, config


async def test_a_database_that_dies_mid_request_is_a_503_and_no_run(
    project_dir: Path, database_url: str
) -> None:
    async with serving_api(project_dir, database_url, raise_app_exceptions=False) as (
        project,
        client,
    ):
        await hook(client, "push", auth=GITHUB)
        body = b'{"ref": "main"}'
        warm = await client.post("/hooks/push", content=body, headers=signed(body))
        assert warm.status_code == 202
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute("BEGIN")
            # The fire waits on this lock while it holds its transaction open...
            await admin.execute("LOCK TABLE flowhost.trigger_deliveries IN EXCLUSIVE MODE")
            request = asyncio.create_task(
                client.post("/hooks/push", content=body, headers=signed(body))
            )
            async with asyncio.timeout(10):
                while not await waiting_on_lock(database_url):
                    await asyncio.sleep(0.02)
            # ... when the database kills every other connection.
            async with await psycopg.AsyncConnection.connect(
                database_url, autocommit=True
            ) as killer:
                await killer.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND query NOT LIKE 'LOCK TABLE%%'"
                )
            answer = await request
            await admin.execute("ROLLBACK")
        assert_problem(answer, 503)
        assert answer.headers["retry-after"] == "1"
        assert len(await runs(project)) == 1  # the warm-up's only


async def waiting_on_lock(database_url: str) -> bool:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        row = await (
            await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
        ).fetchone()
    return row is not None and row[0] > 0


def test_signed_helper_matches_github(project_dir: Path) -> None:
    # The helper signs as GitHub does: HMAC-SHA256 of the raw body, hex, "sha256=" prefix.
    from flowhost.webhooks import verify

    body = json.dumps({"a": 1}).encode()
    verify("github", secret=SECRET, headers=signed(body), body=body)


async def test_a_batch_of_fires_answers_each_as_fire_trigger_would(
    project_dir: Path, database_url: str
) -> None:
    from flowhost.errors import TriggerInputError, TriggerNotFoundError
    from flowhost.store.events import events_of_run
    from flowhost.triggers.batch_firing import FireRequest, fire_batch
    from flowhost.triggers.firing import Fired, fire_trigger

    schema = {"type": "object", "required": ["ok"]}
    async with serving_api(project_dir, database_url) as (project, client):
        await hook(client, "batch", auth={"scheme": "none"}, schema=schema)
        async with project.database.transaction() as conn:
            before = await fire_trigger(
                conn,
                "batch",
                {"ok": 0},
                source="webhook",
                delivery_key="old",
                served=project.catalog.flows,
            )
        requests = [
            FireRequest({"ok": 1}, "k1", {"n": 1}),
            FireRequest({"no": 2}, "k2"),
            FireRequest({"ok": 3}, "k1"),
            FireRequest({"ok": 4}, "old"),
            FireRequest({"ok": 5}),
        ]
        served = project.catalog.flows
        async with project.database.transaction() as conn:
            outcomes = await fire_batch(conn, "batch", requests, source="webhook", served=served)
            missing = await fire_batch(conn, "nope", requests[:2], source="webhook")
        first, refused, repeat, old, plain = outcomes
        assert isinstance(first, Fired) and not first.duplicate
        assert isinstance(refused, TriggerInputError) and refused.errors[0]["pointer"] == ""
        assert isinstance(repeat, Fired) and repeat.duplicate
        assert repeat.to_json() | {"duplicate": False} == first.to_json()
        assert isinstance(old, Fired) and old.duplicate and old.fire_id == before.fire_id
        assert isinstance(plain, Fired) and plain.fire_id != first.fire_id
        assert all(isinstance(m, TriggerNotFoundError) for m in missing)
        started = await runs(project)
        assert {r["input"]["ok"] for r in started} == {0, 1, 5}
        async with project.database.connection() as conn:
            events = await events_of_run(conn, first.runs[0].run_id)
        assert events[0].data["trigger"]["fire_id"] == str(first.fire_id)
        view = (await client.get("/api/triggers/batch")).json()
        assert view["stats"]["totalFires"] == 3
        stream = (await client.get("/api/triggers/batch/events?type=trigger.fired")).json()
        fired = {e["data"]["fire_id"]: e["data"] for e in stream["items"]}
        assert fired[str(first.fire_id)]["details"] == {"n": 1}
        assert fired[str(first.fire_id)]["delivery_key"] == "k1"
