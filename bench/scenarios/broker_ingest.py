"""Broker message → run enqueued, MQTT and AMQP: messages/s and p50 latency.

Private brokers (Debian's mosquitto and rabbitmq-server, flowhost.connectors.local_brokers)
on loopback ports. flowhost's side is the host's connectors (`flowhost.connectors.Connectors`)
without a step consumer: what is measured is the ingest, each message fired into a run (run
row, `flow.started`, entry job enqueued, `trigger.fired`, delivery key) in a transaction that
commits before the ack.

- rate: N messages are queued on the broker first (an MQTT persistent session of an exclusive
  connector; a durable AMQP queue), then the connector starts: messages/s until N runs exist.
- latency: one message at a time on an idle connector, from the publisher's wall clock before
  `publish` to the run's `created_at` (the same machine clock, read by Postgres in the
  transaction that enqueues it), p50.

Anchors, in the same repetition and on the same brokers: the raw broker round trip without
flowhost, a plain client draining the same N queued messages (acking each), and publish → a
subscribed client's receipt, one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.engine_drain import temporary_project
from bench.harness import Context, Measurement
from flowhost.connectors.config import parse_connector
from flowhost.connectors.local_brokers import Mosquitto, RabbitMQ
from flowhost.connectors.manager import Connectors
from flowhost.project import Project

NAME = "broker_ingest"
DESCRIPTION = "MQTT and AMQP message → run enqueued: messages/s and p50 latency, vs raw broker"

GAP = 0.01
SOURCE = """
from flowhost_worker import step

@step(flow="inbox", entry=True, isolation="inprocess", triggers={{"define": {define!r},
      "subscribe": ["readings"]}})
async def take(data, ctx):
    return None
"""


async def run(ctx: Context) -> Sequence[Measurement]:
    messages = ctx.size(2000, 200)
    samples = ctx.size(200, 30)
    found: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="fh-bench-brokers-") as root:
        # Not saving on every change: that rewrites the whole store per message.
        mosquitto = Mosquitto(Path(root) / "mosquitto", save_every_change=False)
        await asyncio.to_thread(mosquitto.start)
        try:
            found += await _mqtt(ctx, mosquitto, messages, samples)
        finally:
            mosquitto.stop()
        rabbit = RabbitMQ(Path(root) / "rabbitmq")
        try:
            await asyncio.to_thread(rabbit.start)
            found += await _amqp(ctx, rabbit, messages, samples)
        finally:
            await asyncio.to_thread(rabbit.stop)
    return found


# -- flowhost's side --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _project(ctx: Context, trigger: dict[str, Any], label: str) -> AsyncIterator[Project]:
    define = {"name": "readings", "type": trigger.pop("type"), "config": trigger}
    async with (
        ctx.fresh_database(label) as url,
        temporary_project(url, {"inbox.py": SOURCE.format(define=define)}) as project,
    ):
        from flowhost.engine.host import Host

        # Registers the flow and its trigger (what a host does at start), serving nothing.
        await Host(project)._register_flows()
        yield project


@contextlib.asynccontextmanager
async def _connectors(project: Project, connector: dict[str, Any]) -> AsyncIterator[Connectors]:
    config = parse_connector("bench", connector, "bench")
    connectors = Connectors([config], project.database, uuid.uuid4(), interval=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(connectors.run(stop))
    try:
        await _until(lambda: _connected(connectors), 60)
        yield connectors
    finally:
        stop.set()
        await task


async def _connected(connectors: Connectors) -> bool:
    runners = connectors.runners
    return bool(runners) and all(r.state.state == "connected" for r in runners.values())


async def _runs(project: Project) -> int:
    async with project.database.connection() as conn:
        row = await (await conn.execute("SELECT count(*) AS n FROM flowhost.runs")).fetchone()
    assert row is not None
    return int(row["n"])


async def _created_at(project: Project, n: int) -> float | None:
    async with project.database.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT extract(epoch FROM created_at) AS t FROM flowhost.runs "
                "WHERE input -> 'payload' ->> 'n' = %(n)s",
                {"n": str(n)},
            )
        ).fetchone()
    return None if row is None else float(row["t"])


async def _until(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError("the bench waited too long")
        await asyncio.sleep(0.002)


def _payload(n: int) -> bytes:
    return json.dumps({"n": n, "at": time.time()}).encode()


# -- MQTT -------------------------------------------------------------------------------------


async def _mqtt(ctx: Context, broker: Mosquitto, messages: int, samples: int) -> list[Measurement]:
    import aiomqtt

    client_id = f"flowhost-bench-{uuid.uuid4().hex[:8]}"
    connector = {"url": broker.url, "session": "persistent", "client_id": client_id}
    trigger = {"type": "mqtt", "connector": "bench", "topics": ["bench/#"], "exclusive": True}
    async with _project(ctx, dict(trigger), "mqtt") as project:
        # The session and its subscription first, then N messages queued in it.
        async with _connectors(project, connector):
            pass
        await _mqtt_publish(broker, [("bench/rate", _payload(n)) for n in range(messages)])
        started = time.perf_counter()
        async with _connectors(project, connector):
            await _until(lambda: _enough(project, messages), 600)
            rate = messages / (time.perf_counter() - started)
            latencies = []
            for n in range(messages, messages + samples):
                await asyncio.sleep(GAP)
                sent = time.time()
                await _mqtt_publish(broker, [("bench/latency", _payload(n))])
                created = await _until(lambda n=n: _created_at(project, n), 30)
                latencies.append(created - sent)
    # The anchor: a plain subscriber with a persistent session, same broker, same messages.
    anchor_id = f"bench-anchor-{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=anchor_id, clean_session=False
    ) as c:
        await c.subscribe("anchor/#", qos=1)
    await _mqtt_publish(broker, [("anchor/rate", _payload(n)) for n in range(messages)])
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=anchor_id, clean_session=False
    ) as c:
        started = time.perf_counter()
        received = 0
        async for _message in c.messages:
            received += 1
            if received == messages:
                break
        anchor_rate = messages / (time.perf_counter() - started)
        anchor_latencies = []
        for _ in range(samples):
            await asyncio.sleep(GAP)
            sent = time.time()
            await _mqtt_publish(broker, [("anchor/latency", b"{}")])
            await anext(aiter(c.messages))
            anchor_latencies.append(time.time() - sent)
    ctx.log(
        f"mqtt: {rate:.0f} msg/s (raw {anchor_rate:.0f}), p50 {_ms(latencies):.2f} ms "
        f"(raw {_ms(anchor_latencies):.2f} ms)"
    )
    return _measurements("mqtt", rate, anchor_rate, latencies, anchor_latencies)


async def _enough(project: Project, count: int) -> bool:
    return await _runs(project) >= count


async def _mqtt_publish(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    import aiomqtt

    async with aiomqtt.Client(
        "127.0.0.1", broker.port, identifier=f"bench-pub-{uuid.uuid4().hex[:8]}", timeout=120
    ) as client:
        client.pending_calls_threshold = len(messages) + 10  # all at once, by design
        await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in messages))


# -- AMQP -------------------------------------------------------------------------------------


async def _amqp(ctx: Context, broker: RabbitMQ, messages: int, samples: int) -> list[Measurement]:
    import aio_pika

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    connector = {"url": broker.url.replace(f":{broker.PASSWORD}", ""), "password_env": "BENCH_PW"}
    trigger = {"type": "amqp", "connector": "bench", "queue": queue, "prefetch": 100}
    os.environ["BENCH_PW"] = broker.PASSWORD
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "classic"})
        anchor_queue = await channel.declare_queue(
            f"{queue}-anchor", durable=True, arguments={"x-queue-type": "classic"}
        )

        async def publish(routing_key: str, ns: range) -> None:
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(_payload(n), message_id=str(n), delivery_mode=2),
                        routing_key=routing_key,
                    )
                    for n in ns
                )
            )

        await publish(queue, range(messages))
        async with _project(ctx, dict(trigger), "amqp") as project:
            started = time.perf_counter()
            async with _connectors(project, connector):
                await _until(lambda: _enough(project, messages), 600)
                rate = messages / (time.perf_counter() - started)
                latencies = []
                for n in range(messages, messages + samples):
                    await asyncio.sleep(GAP)
                    sent = time.time()
                    await publish(queue, range(n, n + 1))
                    created = await _until(lambda n=n: _created_at(project, n), 30)
                    latencies.append(created - sent)
        # The anchor: a plain consumer (prefetch 100, ack each) of the same kind of queue.
        await publish(anchor_queue.name, range(messages))
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=100)
        anchor = await consumer.get_queue(anchor_queue.name)
        started = time.perf_counter()
        received = 0
        async with anchor.iterator() as iterator:
            async for message in iterator:
                await message.ack()
                received += 1
                if received == messages:
                    break
            anchor_rate = messages / (time.perf_counter() - started)
            anchor_latencies = []
            for n in range(samples):
                await asyncio.sleep(GAP)
                sent = time.time()
                await publish(anchor_queue.name, range(n, n + 1))
                message = await anext(aiter(iterator))
                await message.ack()
                anchor_latencies.append(time.time() - sent)
    ctx.log(
        f"amqp: {rate:.0f} msg/s (raw {anchor_rate:.0f}), p50 {_ms(latencies):.2f} ms "
        f"(raw {_ms(anchor_latencies):.2f} ms)"
    )
    return _measurements("amqp", rate, anchor_rate, latencies, anchor_latencies)


def _ms(latencies: Sequence[float]) -> float:
    return statistics.median(latencies) * 1000


def _measurements(
    kind: str,
    rate: float,
    anchor_rate: float,
    latencies: Sequence[float],
    anchor_latencies: Sequence[float],
) -> list[Measurement]:
    return [
        Measurement(
            f"{kind}_messages_per_s",
            rate,
            "msg/s",
            anchor=f"raw {kind} consume",
            anchor_value=anchor_rate,
        ),
        Measurement(
            f"{kind}_p50_latency",
            _ms(latencies),
            "ms",
            higher_is_better=False,
            anchor=f"raw {kind} publish→receive",
            anchor_value=_ms(anchor_latencies),
        ),
    ]
