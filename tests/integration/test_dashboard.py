"""The dashboard over plain HTTP (in-process, httpx): logging in with the admin token and the
session cookie, 401 without them, CSRF refusals, and every page rendering on an empty database
and with runs, triggers and schedules in it. Its live parts run in a browser
(tests/browser)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from flowhost.api.session import COOKIE, new_session
from flowhost.project import Project
from tests.support.api import BASE_URL, TOKEN, serving_api
from tests.support.engine import running_host, wait_for_run

SAME_ORIGIN = {"Origin": BASE_URL}
PAGES = ["/", "/flows", "/runs", "/triggers", "/triggers/new", "/schedules", "/queues", "/workers"]


@pytest.fixture
async def dashboard(
    orders_project: Path, database_url: str
) -> AsyncIterator[tuple[Project, httpx.AsyncClient]]:
    """The orders project's app and a browser-like client without the bearer token."""
    async with serving_api(orders_project, database_url, token=None) as served:
        yield served


async def log_in(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/?token={TOKEN}")
    assert response.status_code == 303, response.text
    client.cookies.set(COOKIE, client.cookies[COOKIE])


def page_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_the_token_in_the_url_logs_in_with_a_cookie_and_leaves_the_address(
    dashboard: tuple[Project, httpx.AsyncClient],
) -> None:
    _, client = dashboard
    response = await client.get(f"/runs?status=failed&token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["location"] == "/runs?status=failed"  # no token in the address
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=v1.")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="):
        assert attribute in cookie
    assert TOKEN not in cookie  # the cookie is not the token
    assert response.headers["referrer-policy"] == "no-referrer"
    page = await client.get("/runs?status=failed")
    assert "<h1>Runs</h1>" in page_text(page)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    # The API takes the cookie too (reads need no Origin).
    assert (await client.get("/api/flows")).status_code == 200


async def test_without_a_valid_session_pages_answer_the_login_form_with_401(
    dashboard: tuple[Project, httpx.AsyncClient],
) -> None:
    _, client = dashboard
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 401, path
        assert 'action="/login"' in response.text
    wrong = await client.get("/?token=not-the-token-at-all")
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert COOKIE not in wrong.headers.get("set-cookie", "")
    # A cookie made with another token, one expired, one forged: none logs in.
    for value in (
        new_session("another-token-0123456789"),
        new_session(TOKEN, now=0),
        "v1.99999999999.0000",
    ):
        client.cookies.set(COOKIE, value)
        assert (await client.get("/")).status_code == 401
        api = await client.get("/api/flows")
        assert api.status_code == 401 and "log in again" in api.json()["detail"]
    client.cookies.clear()
    assert (await client.get("/api/flows")).status_code == 401


async def test_the_login_form_sets_the_cookie_and_goes_back_where_it_was_asked(
    dashboard: tuple[Project, httpx.AsyncClient],
) -> None:
    _, client = dashboard
    form = {"token": TOKEN, "next": "/flows"}
    refused = await client.post("/login", data=form)  # no Origin: not from the login page
    assert refused.status_code == 403 and COOKIE not in client.cookies
    wrong = await client.post("/login", data={"token": "nope"}, headers=SAME_ORIGIN)
    assert wrong.status_code == 401
    response = await client.post("/login", data=form, headers=SAME_ORIGIN)
    assert response.status_code == 303 and response.headers["location"] == "/flows"
    assert (await client.get("/flows")).status_code == 200
    # `next` is a path of this site only.
    away = await client.post(
        "/login", data={"token": TOKEN, "next": "//evil.example/x"}, headers=SAME_ORIGIN
    )
    assert away.headers["location"] == "/"
    out = await client.post("/logout", headers=SAME_ORIGIN)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]


async def test_cookie_requests_that_change_something_must_come_from_the_dashboard(
    dashboard: tuple[Project, httpx.AsyncClient],
) -> None:
    _, client = dashboard
    await log_in(client)
    start = {"flow": "orders", "input": {"id": "A-1"}}
    for headers in (
        {},  # no Origin
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {**SAME_ORIGIN, "Sec-Fetch-Site": "cross-site"},
    ):
        refused = await client.post("/api/runs", json=start, headers=headers)
        assert refused.status_code == 403, headers
        assert refused.headers["content-type"] == "application/problem+json"
    started = await client.post(
        "/api/runs", json=start, headers={**SAME_ORIGIN, "Sec-Fetch-Site": "same-origin"}
    )
    assert started.status_code == 201, started.text
    # The bearer token is not a browser's: no Origin needed.
    client.cookies.clear()
    bearer = await client.post(
        "/api/runs", json=start, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert bearer.status_code == 201


async def test_every_page_renders_on_an_empty_database(
    dashboard: tuple[Project, httpx.AsyncClient],
) -> None:
    _, client = dashboard
    await log_in(client)
    for path in [*PAGES, "/flows/orders", "/flows/refunds", "/?window=1h", "/?window=7d"]:
        text = page_text(await client.get(path))
        assert "flowhost" in text and "<h1>" in text, path
    missing = [
        f"/runs/{uuid.uuid4()}",
        "/runs/not-a-run",
        "/flows/nope",
        "/triggers/nope",
        "/schedules/nope",
    ]
    for path in missing:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
    # Values typed into the address bar that do not parse are reported, not a 500.
    odd = await client.get("/runs?status=bogus&cursor=zzz&within=2y&parent=x")
    assert "unknown status" in page_text(odd)
    assert "not a run id" in page_text(await client.get("/runs?q=xyz!"))


async def call(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await client.request(method, path, headers=SAME_ORIGIN, **kwargs)
    assert response.status_code < 300, response.text
    return response.json()


async def test_pages_show_runs_triggers_and_schedules(
    orders_project: Path, database_url: str
) -> None:
    async with (
        running_host(orders_project, database_url) as host,
        serving_api(orders_project, database_url, token=None) as (_, client),
    ):
        await log_in(client)
        order = {
            "id": "A-7",
            "customer": "ada@example.com",
            "items": [{"sku": "B", "price": 2, "quantity": 3}],
        }
        run = await call(client, "POST", "/api/runs", json={"flow": "orders", "input": order})
        await wait_for_run(host, uuid.UUID(run["id"]))
        fired = await call(
            client,
            "POST",
            "/api/triggers/refund.request/fire",
            json={"input": {"order_id": "A-7", "amount": 6, "reason": "late"}},
        )
        refund = fired["runs"][0]["runId"]
        await call(
            client,
            "POST",
            "/api/triggers",
            json={"name": "nightly", "type": "schedule", "config": {"cron": "0 3 * * *"}},
        )

        page = page_text(await client.get(f"/runs/{run['id']}"))
        for expected in (
            "completed",
            "flow.completed",
            "step.retry",
            "receipt",
            "charged",
            "state.set",
            "svg",
            "Restart",
            "Replay from",
        ):
            assert expected in page, expected
        assert "data-live-stream" not in page  # over: nothing to follow
        timeline = page_text(await client.get(f"/runs/{run['id']}/timeline?after=1"))
        assert 'data-id="1"' not in timeline and "flow.completed" in timeline

        waiting = await _await_waiting(client, refund)
        assert "/hooks/await/" in waiting and "Resolve" in waiting
        assert f'data-live-stream="/api/runs/{refund}/stream' in waiting

        runs = page_text(await client.get("/runs?flow=orders"))
        assert run["id"] in runs
        found = await client.get(f"/runs?q={run['id'][:8]}")
        assert found.status_code in (200, 303)
        if found.status_code == 303:
            assert found.headers["location"] == f"/runs/{run['id']}"

        overview = page_text(await client.get("/"))
        assert "refunds" in overview and "orders" in overview
        assert re.search(r'class="bar s-completed"', overview)  # the chart has the run

        trigger = page_text(await client.get("/triggers/refund.request"))
        for expected in (
            'data-pointer="/order_id"',
            'data-kind="number"',
            "damaged",
            'data-kind="boolean"',
            "trigger.fired",
            refund[:8],
        ):
            assert expected in trigger, expected
        assert "nightly" in page_text(await client.get("/schedules"))
        assert "0 3 * * *" in page_text(await client.get("/schedules/nightly"))
        assert "Save" in page_text(await client.get("/triggers/nightly/edit"))
        flow = page_text(await client.get("/flows/refunds"))
        assert "before: webhook POST" in flow and "refund.request" in flow
        assert "Waiting for a slot" in page_text(await client.get("/queues"))
        workers = page_text(await client.get("/workers"))
        assert "live" in workers


async def _await_waiting(client: httpx.AsyncClient, run_id: str) -> str:
    """The run's page once its approval await is registered (polled, with a deadline)."""
    async with asyncio.timeout(30):
        while True:
            page = page_text(await client.get(f"/runs/{run_id}"))
            if "/hooks/await/" in page:
                return page
            await asyncio.sleep(0.05)


async def test_runs_started_and_ended_are_counted_per_minute_by_the_database(
    database_url: str,
) -> None:
    """run_activity follows the runs table whoever writes it (the charts' source)."""
    insert = """
        INSERT INTO flowhost.runs (id, flow, status, input, definition_hash, created_at,
                                   finished_at)
        VALUES (gen_random_uuid(), 'f', 'queued', '{}', 'h', '2026-01-01 10:00:30+00', NULL),
               (gen_random_uuid(), 'f', 'completed', '{}', 'h', '2026-01-01 10:00:40+00',
                '2026-01-01 10:02:05+00'),
               (gen_random_uuid(), 'g', 'running', '{}', 'h', '2026-01-01 10:01:00+00', NULL)
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(insert)
        conn.execute(
            "UPDATE flowhost.runs SET status = 'failed', finished_at = '2026-01-01 10:03:59+00'"
            " WHERE status = 'queued'"
        )
        conn.execute("UPDATE flowhost.runs SET step_count = 2")  # no status change: no count
        rows = conn.execute(
            "SELECT to_char(minute AT TIME ZONE 'UTC', 'HH24:MI'), flow, started, completed,"
            " failed FROM flowhost.run_activity ORDER BY 1, 2"
        ).fetchall()
    assert rows == [
        ("10:00", "f", 2, 0, 0),
        ("10:01", "g", 1, 0, 0),
        ("10:02", "f", 0, 1, 0),
        ("10:03", "f", 0, 0, 1),
    ]
