"""`flowhost dev --with-brokers`: private brokers for the project's connectors.

For each connector type the project declares (`[connectors.NAME]` in flowhost.toml), one
private broker starts (flowhost.connectors.local_brokers) with its data under
`.flowhost/brokers/`, and every connector of that type is pointed at it for this run of
`flowhost dev`; the brokers stop when it exits. Nothing else changes: the same triggers, the
same topics and queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
from collections.abc import AsyncIterator, Callable

from flowhost.connectors.config import ConnectorConfig
from flowhost.connectors.local_brokers import Mosquitto, RabbitMQ
from flowhost.settings import Settings

# The variable holding the private RabbitMQ's password, set in this process for its connectors.
PASSWORD_ENV = "FLOWHOST_DEV_RABBITMQ_PASSWORD"


@contextlib.asynccontextmanager
async def local_brokers_for(
    settings: Settings, say: Callable[[str], None] = print
) -> AsyncIterator[Settings]:
    """Start the brokers the project's connectors need; yields the settings pointing at them."""
    kinds = {c.type for c in settings.connectors}
    root = settings.state_dir / "brokers"
    mosquitto: Mosquitto | None = None
    rabbit: RabbitMQ | None = None
    try:
        if "mqtt" in kinds:
            mosquitto = Mosquitto(root / "mosquitto")
            await asyncio.to_thread(mosquitto.start)
            say(f"mqtt broker: {mosquitto.url} (mosquitto, data in {mosquitto.root})")
        if "amqp" in kinds:
            # A new node each time (its name holds its ports): last time's data is not kept.
            shutil.rmtree(root / "rabbitmq", ignore_errors=True)
            rabbit = RabbitMQ(root / "rabbitmq")
            say("amqp broker: starting rabbitmq-server (a few seconds)")
            await asyncio.to_thread(rabbit.start)
            os.environ[PASSWORD_ENV] = rabbit.PASSWORD
            say(f"amqp broker: amqp://{rabbit.USER}@127.0.0.1:{rabbit.port}/ ({PASSWORD_ENV})")
        yield dataclasses.replace(
            settings,
            connectors=tuple(_pointed(c, mosquitto, rabbit) for c in settings.connectors),
        )
    finally:
        if mosquitto is not None:
            mosquitto.stop()
        if rabbit is not None:
            await asyncio.to_thread(rabbit.stop)


def _pointed(
    config: ConnectorConfig, mosquitto: Mosquitto | None, rabbit: RabbitMQ | None
) -> ConnectorConfig:
    local = dataclasses.replace(
        config,
        host="127.0.0.1",
        tls=False,
        ca_file=None,
        cert_file=None,
        key_file=None,
        tls_insecure=False,
    )
    if config.type == "mqtt" and mosquitto is not None:
        return dataclasses.replace(local, port=mosquitto.port, username=None, password_env=None)
    if config.type == "amqp" and rabbit is not None:
        return dataclasses.replace(
            local, port=rabbit.port, username=rabbit.USER, password_env=PASSWORD_ENV, vhost="/"
        )
    return config
