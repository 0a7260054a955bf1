"""Projects with broker triggers, publishers, and polls of runs and connector states."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flowhost.connectors.manager import connector_states
from flowhost.db.database import Database
from flowhost.store import reads
from flowhost.store.connectors import ConnectorState
from tests.support.engine import write_functions


def broker_project(
    root: Path,
    connectors: dict[str, dict[str, Any]],
    triggers: dict[str, tuple[str, dict[str, Any]]],
    *,
    flow: str = "inbox",
) -> Path:
    """A project whose flow `flow` (one in-process step returning its input) subscribes to
    `triggers` (name -> (type, config)), with `connectors` in its flowhost.toml."""
    define = [{"name": n, "type": t, "config": c} for n, (t, c) in triggers.items()]
    files = {
        f"{flow}.py": f"""
from flowhost_worker import step

@step(flow={flow!r}, entry=True, isolation="inprocess",
      triggers={{"define": {define!r}, "subscribe": {list(triggers)!r}}})
async def take(data, ctx):
    return data
"""
    }
    write_functions(root, files)
    lines = []
    for name, table in connectors.items():
        lines.append(f"[connectors.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    (root / "flowhost.toml").write_text("\n".join(lines) + "\n")
    return root


async def runs_of(database: Database, flow: str) -> list[dict[str, Any]]:
    async with database.connection() as conn:
        return await reads.list_runs(conn, flow=flow, limit=10000)


async def inputs_of(database: Database, flow: str) -> list[Any]:
    async with database.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT input FROM flowhost.runs WHERE flow = %(flow)s ORDER BY created_at",
                {"flow": flow},
            )
        ).fetchall()
    return [row["input"] for row in rows]


async def wait_until(
    check: Callable[[], Any], timeout: float = 30, what: str = "the condition"
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy (deadline-bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(0.05)


async def wait_for_inputs(
    database: Database, flow: str, count: int, timeout: float = 30
) -> list[Any]:
    async def enough() -> list[Any] | None:
        found = await inputs_of(database, flow)
        return found if len(found) >= count else None

    return await wait_until(enough, timeout, f"{count} runs of {flow}")  # type: ignore[no-any-return]


async def states(database: Database, connector: str) -> list[ConnectorState]:
    return await connector_states(database, connector=connector)


async def wait_for_state(
    database: Database, connector: str, state: str, timeout: float = 30
) -> ConnectorState:
    async def found() -> ConnectorState | None:
        rows = [s for s in await states(database, connector) if s.state == state]
        return rows[0] if rows else None

    return await wait_until(found, timeout, f"connector {connector} {state}")  # type: ignore[no-any-return]


async def publish_mqtt(
    url_port: int,
    messages: Iterable[tuple[str, bytes]],
    *,
    qos: int = 1,
    version5: bool = False,
    properties: Any = None,
) -> int:
    """Publish each (topic, payload) and wait for the broker's confirmation (QoS 1 PUBACK, QoS
    2 PUBCOMP); returns how many were confirmed."""
    import aiomqtt

    count = 0
    async with aiomqtt.Client(
        "127.0.0.1",
        url_port,
        identifier=f"test-publisher-{uuid.uuid4().hex[:8]}",
        protocol=aiomqtt.ProtocolVersion.V5 if version5 else aiomqtt.ProtocolVersion.V311,
    ) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=qos, properties=properties)
            count += 1
    return count


async def publish_amqp(
    url: str,
    messages: Iterable[tuple[str, str, bytes, str | None]],
) -> int:
    """Publish each (exchange, routing key, body, message id) persistent, with publisher
    confirms; returns how many the broker confirmed."""
    import aio_pika

    count = 0
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for exchange_name, routing_key, body, message_id in messages:
            exchange = (
                channel.default_exchange
                if not exchange_name
                else await channel.get_exchange(exchange_name, ensure=False)
            )
            await exchange.publish(
                aio_pika.Message(
                    body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                ),
                routing_key=routing_key,
            )
            count += 1
    return count
