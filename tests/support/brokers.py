"""The private brokers of flowhost.connectors.local_brokers for tests: a missing binary skips the
tests that need them, unless `FLOWHOST_REQUIRE_BROKERS=1` (set by `.ci/run`), where it fails: CI
must not pass by skipping them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowhost.connectors import local_brokers
from flowhost.connectors.local_brokers import EPMD, MOSQUITTO, RABBITMQ_SERVER

REQUIRE = "FLOWHOST_REQUIRE_BROKERS"


def require(*binaries: str) -> None:
    """Skip (or, under FLOWHOST_REQUIRE_BROKERS=1, fail) when a broker binary is missing."""
    missing = local_brokers.missing_binaries(*binaries)
    if not missing:
        return
    message = (
        f"broker binaries missing: {', '.join(missing)} (apt-get install mosquitto rabbitmq-server)"
    )
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(message + f"; {REQUIRE}=1 makes this a failure", pytrace=False)
    pytest.skip(message)


class Mosquitto(local_brokers.Mosquitto):
    def __init__(
        self, root: Path, *, users: dict[str, str] | None = None, save_every_change: bool = True
    ) -> None:
        require(MOSQUITTO)
        super().__init__(root, users=users, save_every_change=save_every_change)


class RabbitMQ(local_brokers.RabbitMQ):
    def __init__(self, root: Path) -> None:
        require(RABBITMQ_SERVER, EPMD)
        super().__init__(root)
