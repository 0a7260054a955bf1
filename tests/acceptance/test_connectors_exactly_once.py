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

# Messages queued on the broker before flowhost consumes them (enough for a kill to land while
# they are being fired: flowhost takes a few thousand a second), then more after the kill.
FIRST_BY_KIND = {"mqtt": 1000, "amqp": 3000}
SECOND = 200
CLIENT_ID = "flowhost-test-readings"


def mqtt_project(root: Path, broker: Mosquitto, protocol: str = "3.1.1") -> Path:
    connector = {
        "url": broker.url,
        "protocol": protocol,
        "session": "persistent",
        "client_id": CLIENT_ID,
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


async def queue_up_mqtt(broker: Mosquitto, protocol: str, payloads: list[bytes]) -> None:
    """The connector's persistent session and subscription made first (as its last run would
    have left them), then the messages queued in it."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    options: dict[str, Any] = {"clean_session": False}
    if protocol == "5":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        options = {"clean_start": False, "properties": properties}
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier=CLIENT_ID,
        protocol=aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311,
        **options,
    ) as client:
        await client.subscribe("readings/#", qos=1)
    await publish_mqtt(broker.port, [("readings/a", p) for p in payloads])


async def queue_up_amqp(broker: RabbitMQ, queue: str, payloads: list[bytes]) -> None:
    import aio_pika

    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "classic"})
    await publish_amqp(broker.url, [("", queue, p, f"m-{n}") for n, p in enumerate(payloads)])


async def test_mqtt_broker_killed_mid_stream_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, database_url: str
) -> None:
    first_count = FIRST_BY_KIND["mqtt"]
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    try:
        await queue_up_mqtt(broker, "3.1.1", list(numbered(0, first_count)))
        async with running_host(mqtt_project(tmp_path / "p", broker), database_url) as project:
            await wait_for_runs(project.database, first_count // 10)
            broker.kill()  # mid-stream: runs are still being started from queued messages
            killed_at = await count_runs(project.database)
            await wait_for_state(project.database, "plant", "backing_off")
            broker.start()
            await publish_mqtt_retrying(broker, list(numbered(first_count, SECOND)))
            await assert_each_once(project.database, first_count + SECOND)
    finally:
        broker.stop()
    assert killed_at < first_count, "the kill came after the stream: it tested nothing"


async def test_amqp_broker_killed_mid_stream_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, database_url: str, rabbitmq: RabbitMQ, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TEST_RABBIT_PASSWORD", rabbitmq.PASSWORD)
    first_count = FIRST_BY_KIND["amqp"]
    queue = f"readings-{uuid.uuid4().hex[:8]}"
    project_dir = amqp_project(tmp_path, rabbitmq, queue)
    try:
        await queue_up_amqp(rabbitmq, queue, list(numbered(0, first_count)))
        async with running_host(project_dir, database_url) as project:
            await wait_for_runs(project.database, first_count // 10)
            await asyncio.to_thread(rabbitmq.kill)
            killed_at = await count_runs(project.database)
            await wait_for_state(project.database, "rabbit", "backing_off")
            await asyncio.to_thread(rabbitmq.start)
            # A loaded machine: the node boots, then recovers its queues.
            await wait_for_state(project.database, "rabbit", "connected", timeout=180)
            await publish_amqp(
                rabbitmq.url,
                [
                    ("", queue, body, f"m-{first_count + n}")
                    for n, body in enumerate(numbered(first_count, SECOND))
                ],
            )
            await assert_each_once(project.database, first_count + SECOND)
    except AssertionError:
        for log in sorted((rabbitmq.root / "log").glob("*.log")):
            print(log, log.read_text(errors="replace")[-4000:])
        raise
    finally:
        if not rabbitmq.running:
            rabbitmq.start()
    assert killed_at < first_count, "the kill came after the stream: it tested nothing"


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
    first_count = FIRST_BY_KIND[kind]
    first = list(numbered(0, first_count))
    if mosquitto is not None:
        await queue_up_mqtt(mosquitto, "5", first)
    else:
        await queue_up_amqp(rabbitmq, queue, first)
    host = HostProcess("host", project_dir, database_url, TEST_RABBIT_PASSWORD=rabbitmq.PASSWORD)
    try:
        host.start()
        async with opened(database_url) as database:
            await wait_for_runs(database, first_count // 10)
            host.kill()
            killed_at = await count_runs(database)
            host.start()
            await asyncio.to_thread(host.wait_ready, 60)
            second = list(numbered(first_count, SECOND))
            if mosquitto is not None:
                await publish_mqtt(mosquitto.port, [("readings/a", p) for p in second])
            else:
                await publish_amqp(
                    rabbitmq.url,
                    [("", queue, p, f"m-{first_count + n}") for n, p in enumerate(second)],
                )
            await assert_each_once(database, first_count + SECOND)
    except AssertionError:
        print(host.tail(80))
        raise
    finally:
        host.stop()
        if mosquitto is not None:
            mosquitto.stop()
    assert killed_at < first_count, "the kill came after the stream: it tested nothing"
