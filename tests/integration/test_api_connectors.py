"""`/api/connectors`: each connector with every host's connections (consuming and publishing),
their states and last errors without secrets, and the lease of an exclusive one; the same
states in the `flowhost_connector_state` gauge at /metrics."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flowhost.connectors.local_brokers import free_port
from tests.support.api import TOKEN, api_client, assert_problem
from tests.support.brokers import Mosquitto
from tests.support.connectors import broker_project, wait_for_state
from tests.support.engine import running_host, start, wait_for_run, write_functions

PASSWORD = "hunter2-connector-password"

PUBLISHER = """
from flowhost_worker import step

@step(flow="announce", entry=True, isolation="inprocess")
async def announce(data, ctx):
    return await ctx.publish.mqtt("announce/x", "hello", connector="plant")
"""


async def test_connectors_show_each_hosts_connections_errors_and_lease(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TEST_DOWN_PASSWORD", PASSWORD)
    down = free_port()  # nothing listens there
    root = broker_project(
        tmp_path,
        {
            "plant": {"url": mosquitto.url},
            "down": {
                "url": f"amqp://flowhost@127.0.0.1:{down}/",
                "password_env": "TEST_DOWN_PASSWORD",
                # Backing off for at least 6 s: still so when the API is asked.
                "backoff_initial": 60,
                "backoff_max": 60,
            },
        },
        {
            "sensors": ("mqtt", {"connector": "plant", "topics": ["s/#"], "exclusive": True}),
            "orders": ("amqp", {"connector": "down", "queue": f"q-{uuid.uuid4().hex[:8]}"}),
        },
    )
    write_functions(root, {"announce.py": PUBLISHER})
    async with running_host(root, database_url, api_token=TOKEN) as project:
        await wait_for_state(project.database, "plant", "connected")
        await wait_for_state(project.database, "down", "backing_off")
        run = await wait_for_run(project, await start(project, "announce", {}))
        assert run["status"] == "completed", run
        async with api_client(project) as client:
            listed = await client.get("/api/connectors")
            one = await client.get("/api/connectors/plant")
            missing = await client.get("/api/connectors/absent")
            unauthorized = await client.get("/api/connectors", headers={"Authorization": ""})
            scraped = (await client.get("/metrics")).text

    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [c["name"] for c in body["items"]] == ["down", "plant"]
    broken, plant = body["items"]
    assert plant == one.json()

    assert plant["type"] == "mqtt" and plant["configured"] is True
    assert plant["address"] == mosquitto.url and plant["passwordEnv"] is None
    consuming = next(c for c in plant["connections"] if c["role"] == "consume")
    publishing = next(c for c in plant["connections"] if c["role"] == "publish")
    assert consuming["state"] == "connected" and consuming["exclusive"] is True
    assert consuming["holdsLease"] is True and consuming["triggers"] == ["sensors"]
    assert consuming["hostAlive"] is True and consuming["hostname"]
    assert publishing["state"] == "connected" and publishing["holdsLease"] is False
    assert plant["lease"]["live"] is True
    assert plant["lease"]["hostId"] == consuming["hostId"] == publishing["hostId"]

    assert broken["passwordEnv"] == "TEST_DOWN_PASSWORD" and broken["lease"] is None
    [failing] = broken["connections"]
    assert failing["state"] == "backing_off" and failing["attempt"] >= 1
    assert failing["lastError"] and str(down) in failing["lastError"]
    assert failing["nextAttemptAt"] is not None
    assert PASSWORD not in listed.text

    assert_problem(missing, 404)
    assert_problem(unauthorized, 401)
    assert (
        'flowhost_connector_state{connector="plant",role="consume",state="connected"} 1.0'
        in scraped
    )
    assert (
        'flowhost_connector_state{connector="plant",role="publish",state="connected"} 1.0'
        in scraped
    )
    assert 'flowhost_connector_state{connector="down",role="consume",state="backing_off"} 1.0' in (
        scraped
    )
    assert 'flowhost_connector_publishes_total{connector="plant",outcome="published"}' in scraped
