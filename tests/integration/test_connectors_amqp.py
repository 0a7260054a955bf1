"""AMQP triggers against a real RabbitMQ: queues declared and bound to direct, topic and fanout
exchanges; messages in → runs; a message id makes a repeat start nothing; a malformed payload is
retried up to max_failures, then dead-lettered, with the reason in the trigger's stream."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flowhost.store import connectors as connector_store
from flowhost.store import triggers as trigger_store
from tests.support.brokers import RabbitMQ
from tests.support.connectors import (
    broker_project,
    inputs_of,
    publish_amqp,
    wait_for_inputs,
    wait_for_state,
    wait_until,
)
from tests.support.engine import running_host


def unique(prefix: str) -> str:
    # One RabbitMQ serves the session: names of one test do not meet another's.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def queue_project(tmp_path: Path, broker: RabbitMQ, triggers: dict[str, dict[str, Any]]) -> Path:
    return broker_project(
        tmp_path,
        {
            "rabbit": {
                "url": f"amqp://{broker.USER}@127.0.0.1:{broker.port}/",
                "password_env": "TEST_RABBIT_PASSWORD",
                "backoff_initial": 0.2,
                "backoff_max": 1,
            }
        },
        {name: ("amqp", {"connector": "rabbit", **config}) for name, config in triggers.items()},
    )


async def test_messages_from_direct_topic_and_fanout_exchanges_start_runs(
    tmp_path: Path, database_url: str, rabbitmq: RabbitMQ, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TEST_RABBIT_PASSWORD", rabbitmq.PASSWORD)
    direct, topic, fanout = unique("orders"), unique("events"), unique("broadcast")
    triggers = {
        "orders": {"queue": unique("q-orders"), "exchange": direct, "binding_keys": ["new"]},
        "events": {
            "queue": unique("q-events"),
            "exchange": topic,
            "exchange_type": "topic",
            "binding_keys": ["order.*", "invoice.#"],
            "prefetch": 4,
        },
        "broadcast": {
            "queue": unique("q-broadcast"),
            "exchange": fanout,
            "exchange_type": "fanout",
            "queue_type": "classic",
        },
    }
    async with running_host(queue_project(tmp_path, rabbitmq, triggers), database_url) as project:
        await wait_for_state(project.database, "rabbit", "connected")
        await publish_amqp(
            rabbitmq.url,
            [
                (direct, "new", b'{"order": 1}', "o-1"),
                (direct, "other", b'{"order": 2}', "o-2"),  # not bound
                (topic, "order.paid", b'{"e": "paid"}', None),
                (topic, "invoice.sent.late", b'{"e": "late"}', None),
                (topic, "shipment.sent", b'{"e": "no"}', None),  # not bound
                (fanout, "anything", b'{"all": true}', "b-1"),
                (direct, "new", b'{"order": 1}', "o-1"),  # the same message id again
            ],
        )
        inputs = await wait_for_inputs(project.database, "inbox", 4)
        await publish_amqp(rabbitmq.url, [(direct, "new", b'{"order": 3}', "o-3")])
        inputs = await wait_for_inputs(project.database, "inbox", 5)
        inputs = await inputs_of(project.database, "inbox")
    payloads = sorted(str(i["payload"]) for i in inputs)
    assert payloads == sorted(
        ["{'order': 1}", "{'e': 'paid'}", "{'e': 'late'}", "{'all': True}", "{'order': 3}"]
    )
    first = next(i for i in inputs if i["message_id"] == "o-1")
    assert first["exchange"] == direct and first["routing_key"] == "new"
    assert first["queue"] == triggers["orders"]["queue"] and first["connector"] == "rabbit"


async def test_a_malformed_payload_is_dead_lettered_after_max_failures_with_its_reason(
    tmp_path: Path, database_url: str, rabbitmq: RabbitMQ, monkeypatch: Any
) -> None:
    import aio_pika

    monkeypatch.setenv("TEST_RABBIT_PASSWORD", rabbitmq.PASSWORD)
    queue, dead = unique("q-payments"), unique("dead")
    # The dead-letter exchange and its queue are the user's: made here, as a user would.
    connection = await aio_pika.connect(rabbitmq.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(dead, aio_pika.ExchangeType.FANOUT)
        dead_queue = await channel.declare_queue(f"{dead}-queue", durable=True)
        await dead_queue.bind(exchange)
        triggers = {
            "payments": {
                "queue": queue,
                "max_failures": 3,
                "dead_letter_exchange": dead,
                # The schema is the run input's: the payload is under "payload".
                "schema": {
                    "type": "object",
                    "properties": {"payload": {"type": "object", "required": ["amount"]}},
                },
            }
        }
        project_dir = queue_project(tmp_path, rabbitmq, triggers)
        async with running_host(project_dir, database_url) as project:
            await wait_for_state(project.database, "rabbit", "connected")
            await publish_amqp(
                rabbitmq.url,
                [
                    ("", queue, b"{broken", "p-1"),
                    ("", queue, b'{"no_amount": 1}', "p-2"),
                    ("", queue, b'{"amount": 5}', "p-3"),
                ],
            )
            await wait_for_inputs(project.database, "inbox", 1)

            async def rejected() -> list[trigger_store.TriggerEvent] | None:
                async with project.database.connection() as conn:
                    found = await trigger_store.trigger_events(
                        conn, "payments", types=["trigger.rejected"]
                    )
                return found if len(found) == 2 else None

            events = await wait_until(rejected, what="two rejections")
            dead_letters = []
            for _ in range(2):
                message = await wait_until(
                    lambda: dead_queue.get(fail=False, no_ack=True), what="a dead letter"
                )
                dead_letters.append(message)
            async with project.database.connection() as conn:
                left = await connector_store.failures_of(conn, "payments")
            inputs = await inputs_of(project.database, "inbox")
    assert [i["payload"] for i in inputs] == [{"amount": 5}]
    by_id = {e.data["message"]["message_id"]: e.data for e in events}
    assert by_id["p-1"]["reason"].startswith("the payload is not JSON")
    assert by_id["p-2"]["error"]["type"] == "TriggerInputError"
    assert by_id["p-2"]["error"]["errors"] == [
        {"pointer": "/payload", "message": "'amount' is a required property"}
    ]
    assert all(d["attempts"] == 3 and d["dead_lettered"] for d in by_id.values())
    assert sorted(m.message_id for m in dead_letters) == ["p-1", "p-2"]
    assert all(m.headers["x-death"][0]["reason"] == "rejected" for m in dead_letters)
    assert left == []  # counts of settled messages are gone
