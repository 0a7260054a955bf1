"""Exactly once into runs under crashes: every message a broker confirmed to its publisher
starts exactly one run, when the broker is SIGKILLed and restarted mid-stream (MQTT QoS 1 with
a persistent session, AMQP durable queues with persistent messages) and when the host consuming
them is SIGKILLed and restarted (real `flowhost host` processes)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowhost.db.database import Database
from tests.support.brokers import Mosquitto, RabbitMQ
from tests.support.connectors import (
    broker_project,
    inputs_of,
    publish_amqp,
    publish_mqtt,
    wait_for_state,
    wait_until,
)
from tests.support.engine import running_host
from tests.support.hosts import HostProcess

pytestmark = pytest.mark.timeout(420)

FIRST, SECOND = 300, 200


def mqtt_project(root: Path, broker: Mosquitto, protocol: str = "3.1.1") -> Path:
    connector = {
        "url": broker.url,
        "protocol": protocol,
        "session": "persistent",
        "client_id": f"flowhost-test-{uuid.uuid4().hex[:8]}",
        "backoff_initial": 0.2,
        "backoff_max": 1,
        "lease_ttl": 3,
    }
    trigger = {"connector": "plant", "topics": ["readings/#"], "qos": 1, "exclusive": True}
    return broker_project(root, {"plant": connector}, {"readings": ("mqtt", trigger)})


def amqp_project(root: Path, broker: RabbitMQ, queue: str) -> Path:
    connector = {"url": broker.url.replace(f":{broker.PASSWORD}", "")}
    connector |= {"password_env": "TEST_RABBIT_PASSWORD", "backoff_initial": 0.2}
    connector |= {"backoff_max": 1}
    trigger = {"connector": "rabbit", "queue": queue, "prefetch": 50}
    return broker_project(root, {"rabbit": connector}, {"readings": ("amqp", trigger)})


def numbered(start: int, count: int) -> Iterator[bytes]:
    for n in range(start, start + count):
        yield json.dumps({"n": n}).encode()


async def count_runs(database: Database) -> int:
    return len(await inputs_of(database, "inbox"))


async def wait_for_runs(database: Database, at_least: int, timeout: float = 90) -> None:
    async def enough() -> bool:
        return await count_runs(database) >= at_least

    await wait_until(enough, timeout, f"{at_least} runs")


async def assert_each_once(database: Database, total: int) -> None:
    """Every number 0..total-1 started exactly one run (and, a while later, still one)."""
    await wait_for_runs(database, total)
    # Redeliveries after the last message would come within a reconnect: give them time.
    await asyncio.sleep(2)
    numbers = [i["payload"]["n"] for i in await inputs_of(database, "inbox")]
    twice = sorted(n for n, c in collections.Counter(numbers).items() if c > 1)
    missing = sorted(set(range(total)) - set(numbers))
    assert not twice and not missing, f"twice: {twice[:20]}, missing: {missing[:20]}"
    assert len(numbers) == total


async def publish_mqtt_retrying(broker: Mosquitto, payloads: list[bytes]) -> None:
    """Publish at QoS 1, waiting for each PUBACK; the broker may still be coming back."""

    async def attempt() -> bool:
        try:
            await publish_mqtt(broker.port, [("readings/a", p) for p in payloads])
        except Exception:
            return False
        return True

    await wait_until(attempt, 30, "the broker to take messages")


async def test_mqtt_broker_killed_mid_stream_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, database_url: str
) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    try:
        async with running_host(mqtt_project(tmp_path / "p", broker), database_url) as project:
            await wait_for_state(project.database, "plant", "connected")
            await publish_mqtt(broker.port, [("readings/a", p) for p in numbered(0, FIRST)])
            await wait_for_runs(project.database, FIRST // 4)
            broker.kill()  # mid-stream: runs are still being started from queued messages
            killed_at = await count_runs(project.database)
            await wait_for_state(project.database, "plant", "backing_off")
            broker.start()
            await publish_mqtt_retrying(broker, list(numbered(FIRST, SECOND)))
            await assert_each_once(project.database, FIRST + SECOND)
    finally:
        broker.stop()
    assert killed_at < FIRST, "the kill came after the stream: it tested nothing"


async def test_amqp_broker_killed_mid_stream_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, database_url: str, rabbitmq: RabbitMQ, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TEST_RABBIT_PASSWORD", rabbitmq.PASSWORD)
    queue = f"readings-{uuid.uuid4().hex[:8]}"
    project_dir = amqp_project(tmp_path, rabbitmq, queue)
    try:
        async with running_host(project_dir, database_url) as project:
            await wait_for_state(project.database, "rabbit", "connected")
            await publish_amqp(
                rabbitmq.url,
                [("", queue, body, f"m-{n}") for n, body in enumerate(numbered(0, FIRST))],
            )
            await wait_for_runs(project.database, FIRST // 4)
            await asyncio.to_thread(rabbitmq.kill)
            killed_at = await count_runs(project.database)
            await wait_for_state(project.database, "rabbit", "backing_off")
            await asyncio.to_thread(rabbitmq.start)
            # A loaded machine: the node boots, then recovers its queues.
            await wait_for_state(project.database, "rabbit", "connected", timeout=180)
            await publish_amqp(
                rabbitmq.url,
                [
                    ("", queue, body, f"m-{FIRST + n}")
                    for n, body in enumerate(numbered(FIRST, SECOND))
                ],
            )
            await assert_each_once(project.database, FIRST + SECOND)
    except AssertionError:
        for log in sorted((rabbitmq.root / "log").glob("*.log")):
            print(log, log.read_text(errors="replace")[-4000:])
        raise
    finally:
        if not rabbitmq.running:
            rabbitmq.start()
    assert killed_at < FIRST, "the kill came after the stream: it tested nothing"


@contextlib.asynccontextmanager
async def opened(url: str) -> Any:
    async with Database(url, pool_size=2) as database:
        yield database


@pytest.mark.parametrize("kind", ["mqtt", "amqp"])
async def test_a_host_killed_mid_stream_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, database_url: str, rabbitmq: RabbitMQ, kind: str
) -> None:
    mosquitto = Mosquitto(tmp_path / "broker") if kind == "mqtt" else None
    queue = f"readings-{uuid.uuid4().hex[:8]}"
    if mosquitto is not None:
        mosquitto.start()
        # MQTT 5 here (a session kept by its expiry interval), 3.1.1 in the broker test.
        project_dir = mqtt_project(tmp_path / "p", mosquitto, protocol="5")
    else:
        project_dir = amqp_project(tmp_path / "p", rabbitmq, queue)
    host = HostProcess("host", project_dir, database_url, TEST_RABBIT_PASSWORD=rabbitmq.PASSWORD)
    try:
        host.start()
        await asyncio.to_thread(host.wait_ready, 60)
        async with opened(database_url) as database:
            connector = "plant" if kind == "mqtt" else "rabbit"
            await wait_for_state(database, connector, "connected")
            first = list(numbered(0, FIRST))
            if mosquitto is not None:
                await publish_mqtt(mosquitto.port, [("readings/a", p) for p in first])
            else:
                await publish_amqp(
                    rabbitmq.url, [("", queue, p, f"m-{n}") for n, p in enumerate(first)]
                )
            await wait_for_runs(database, FIRST // 4)
            host.kill()
            killed_at = await count_runs(database)
            host.start()
            await asyncio.to_thread(host.wait_ready, 60)
            second = list(numbered(FIRST, SECOND))
            if mosquitto is not None:
                await publish_mqtt(mosquitto.port, [("readings/a", p) for p in second])
            else:
                await publish_amqp(
                    rabbitmq.url,
                    [("", queue, p, f"m-{FIRST + n}") for n, p in enumerate(second)],
                )
            await assert_each_once(database, FIRST + SECOND)
    except AssertionError:
        print(host.tail(80))
        raise
    finally:
        host.stop()
        if mosquitto is not None:
            mosquitto.stop()
    assert killed_at < FIRST, "the kill came after the stream: it tested nothing"
