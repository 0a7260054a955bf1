"""Exclusive connectors: of two `flowhost host` processes one holds the lease and the
connection, the other stands by; when the holder is SIGKILLed the other takes over once the
lease lapsed, and messages keep starting runs. A connector without exclusive triggers is
connected on every host."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from flowhost.connectors.manager import connector_states
from flowhost.db.database import Database
from flowhost.store import connectors as store
from tests.support.brokers import Mosquitto
from tests.support.connectors import broker_project, inputs_of, publish_mqtt, wait_until
from tests.support.hosts import HostProcess

pytestmark = pytest.mark.timeout(180)


def project(root: Path, broker: Mosquitto, *, exclusive: bool) -> Path:
    connector = {
        "url": broker.url,
        "session": "persistent",
        "client_id": f"flowhost-lease-{uuid.uuid4().hex[:8]}",
        "lease_ttl": 2,
        "backoff_initial": 0.2,
        "backoff_max": 1,
    }
    trigger = {"connector": "plant", "topics": ["readings/#"], "exclusive": exclusive}
    return broker_project(root, {"plant": connector}, {"readings": ("mqtt", trigger)})


async def by_state(database: Database) -> dict[str, list[store.ConnectorState]]:
    found: dict[str, list[store.ConnectorState]] = {}
    for state in await connector_states(database, connector="plant"):
        if state.host_alive:
            found.setdefault(state.state, []).append(state)
    return found


async def test_an_exclusive_connector_fails_over_when_its_holder_is_killed(
    tmp_path: Path, database_url: str
) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    project_dir = project(tmp_path / "p", broker, exclusive=True)
    hosts = [HostProcess(f"host{i}", project_dir, database_url) for i in range(2)]
    try:
        for host in hosts:
            host.start()
        for host in hosts:
            await asyncio.to_thread(host.wait_ready, 60)
        async with Database(database_url, pool_size=2) as database:

            async def one_holder() -> dict[str, list[store.ConnectorState]] | None:
                found = await by_state(database)
                ok = len(found.get("connected", [])) == 1 and len(found.get("standby", [])) == 1
                return found if ok else None

            found = await wait_until(one_holder, 30, "one connected host and one on standby")
            [holder] = found["connected"]
            assert holder.exclusive and holder.holds_lease
            assert not found["standby"][0].holds_lease
            await publish_mqtt(broker.port, [("readings/a", b'{"n": 1}')])
            await wait_until(lambda: _runs(database, 1), 30, "the first run")

            [killed] = [h for h in hosts if h.pid == holder.pid]
            killed.kill()
            # The survivor takes the lapsed lease (2 s) and connects.
            survivor_pid = next(h.pid for h in hosts if h is not killed)

            async def taken_over() -> bool:
                found = await by_state(database)
                return any(s.pid == survivor_pid for s in found.get("connected", []))

            await wait_until(taken_over, 30, "the survivor to connect")
            await publish_mqtt(broker.port, [("readings/a", b'{"n": 2}')])
            await wait_until(lambda: _runs(database, 2), 30, "the second run")
            async with database.connection() as conn:
                lease = await store.lease_of(conn, "plant")
            dead = [s for s in await connector_states(database) if not s.host_alive]
    finally:
        for host in hosts:
            host.stop()
        broker.stop()
    assert lease is not None and lease["live"]
    # The killed host's row stays until it is seen gone, marked as a dead host's.
    assert [s.pid for s in dead] in ([], [holder.pid])


async def test_a_connector_without_exclusive_triggers_is_connected_on_every_host(
    tmp_path: Path, database_url: str
) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    project_dir = project(tmp_path / "p", broker, exclusive=False)
    hosts = [HostProcess(f"host{i}", project_dir, database_url) for i in range(2)]
    try:
        for host in hosts:
            host.start()
        for host in hosts:
            await asyncio.to_thread(host.wait_ready, 60)
        async with Database(database_url, pool_size=2) as database:

            async def both() -> bool:
                return len((await by_state(database)).get("connected", [])) == 2

            await wait_until(both, 30, "both hosts connected")
            # Both hosts receive every message; the delivery key starts one run per message.
            await publish_mqtt(broker.port, [("readings/a", b'{"n": %d}' % n) for n in range(20)])
            await wait_until(lambda: _runs(database, 20), 30, "20 runs")
            await asyncio.sleep(1)
            numbers = sorted(i["payload"]["n"] for i in await inputs_of(database, "inbox"))
    finally:
        for host in hosts:
            host.stop()
        broker.stop()
    assert numbers == list(range(20))


async def _runs(database: Database, count: int) -> bool:
    return len(await inputs_of(database, "inbox")) >= count
