"""Shared fixtures: a real Postgres for the session, a fresh database per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flowhost.db.database import Database
from flowhost.db.embedded import EmbeddedPostgres
from flowhost.project import prepare_schema
from tests.support.brokers import Mosquitto, RabbitMQ
from tests.support.databases import TEMPLATE, create_database, drop_database, with_database

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """A superuser URL to the session's server ('postgres' database)."""
    external = os.environ.get("FLOWHOST_TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Short path: the server's unix socket lives in it.
    root = Path(tempfile.mkdtemp(prefix="fh-tests-"))
    server = EmbeddedPostgres(root / "pg")
    try:
        yield server.start("postgres")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_database(admin_url: str) -> AsyncIterator[str]:
    drop_database(admin_url, TEMPLATE)
    name = create_database(admin_url)
    async with Database(with_database(admin_url, name), pool_size=2) as database:
        await prepare_schema(database)
    drop_database(admin_url, TEMPLATE)
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE)
            )
        )
    yield TEMPLATE
    drop_database(admin_url, TEMPLATE)


@pytest.fixture
def database_url(admin_url: str, template_database: str) -> Iterator[str]:
    """A fresh database with the flowhost schema and PgQueuer installed."""
    name = create_database(admin_url, template=template_database)
    try:
        yield with_database(admin_url, name)
    finally:
        drop_database(admin_url, name)


@pytest.fixture
def empty_database_url(admin_url: str) -> Iterator[str]:
    """A fresh database with nothing in it."""
    name = create_database(admin_url)
    try:
        yield with_database(admin_url, name)
    finally:
        drop_database(admin_url, name)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    async with Database(database_url, pool_size=8) as opened:
        yield opened


@pytest.fixture
def orders_project() -> Path:
    return EXAMPLES / "orders"


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    """A private mosquitto for the session (tests that kill a broker start their own)."""
    root = Path(tempfile.mkdtemp(prefix="fh-mosquitto-"))
    broker = Mosquitto(root)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQ]:
    """A private RabbitMQ node for the session (it boots in seconds: once). A test that kills
    it starts it again before it ends."""
    root = Path(tempfile.mkdtemp(prefix="fh-rabbitmq-"))
    broker = RabbitMQ(root)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
