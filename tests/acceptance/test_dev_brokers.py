"""`flowhost dev --with-brokers`: a private mosquitto for the project's MQTT connector, the
connector pointed at it, messages in → runs, and the broker stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from pathlib import Path

from flowhost.db.database import Database
from tests.support.brokers import Mosquitto
from tests.support.cli import read_until, start_flowhost
from tests.support.connectors import broker_project, publish_mqtt, wait_for_inputs


def test_dev_with_brokers_starts_a_broker_for_the_connectors_and_stops_it(
    tmp_path: Path, database_url: str
) -> None:
    Mosquitto(tmp_path / "check")  # skips (or fails under CI) without the binary
    project = broker_project(
        tmp_path / "p",
        {"plant": {"url": "mqtts://nobody@broker.invalid:8883", "password_env": "NOT_SET"}},
        {"readings": ("mqtt", {"connector": "plant", "topics": ["readings/#"]})},
    )
    seen: list[str] = []
    with start_flowhost(
        "dev", "--with-brokers", "--port", "0", project=project, database_url=database_url
    ) as dev:
        try:
            line = read_until(dev, "mqtt broker:", seen)
            port = int(line.split("mqtt://127.0.0.1:")[1].split()[0])
            read_until(dev, "host ready", seen)

            async def publish_and_wait() -> list[object]:
                async with Database(database_url, pool_size=2) as database:
                    from tests.support.connectors import wait_for_state

                    await wait_for_state(database, "plant", "connected")
                    await publish_mqtt(port, [("readings/a", b'{"t": 1}')])
                    return await wait_for_inputs(database, "inbox", 1)

            [data] = asyncio.run(publish_and_wait())
        finally:
            dev.send_signal(signal.SIGINT)
            code = dev.wait(timeout=60)
    assert code == 0, "".join(seen)
    assert data["payload"] == {"t": 1}  # type: ignore[index]
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        raise AssertionError("the broker still listens after flowhost dev stopped")
