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
        self,
        root: Path,
        *,
        users: dict[str, str] | None = None,
        save_every_change: bool = True,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        require(MOSQUITTO)
        super().__init__(root, users=users, save_every_change=save_every_change, tls=tls)


def certificates(root: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed (openssl CLI):
    (CA file, certificate, key)."""
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    root.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=root, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=flowhost test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (root / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    )
    return root / "ca.pem", root / "server.pem", root / "server.key"


class RabbitMQ(local_brokers.RabbitMQ):
    def __init__(self, root: Path) -> None:
        require(RABBITMQ_SERVER, EPMD)
        super().__init__(root)
