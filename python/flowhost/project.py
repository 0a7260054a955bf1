"""The composition root: one project's settings, database (embedded or not), schema and catalog."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

from flowhost.db.database import Database
from flowhost.db.embedded import EmbeddedPostgres
from flowhost.db.migrations import migrate
from flowhost.engine.catalog import FunctionCatalog
from flowhost.queue.pgqueuer_queue import install_queue_schema
from flowhost.settings import Settings
from flowhost.triggers.event_triggers import EventTriggers
from flowhost.workers.commands import RuntimeCommands

logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class Project:
    settings: Settings
    database: Database
    catalog: FunctionCatalog
    # The active event triggers, kept current by the host serving the project
    # (flowhost.triggers.event_triggers); the API's published events use them too.
    event_triggers: EventTriggers = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.event_triggers = EventTriggers(
            lambda: self.catalog.flows, max_depth=self.settings.trigger_max_depth
        )


async def prepare_schema(database: Database) -> None:
    """Apply flowhost's migrations and install PgQueuer's tables (both idempotent)."""
    async with database.connection() as conn:
        applied = await migrate(conn)
        for migration in applied:
            logger.info("applied migration %04d_%s", migration.version, migration.name)
        if await install_queue_schema(conn):
            logger.info("installed the PgQueuer schema")


@contextlib.asynccontextmanager
async def open_database(settings: Settings, *, prepare: bool = True) -> AsyncIterator[Database]:
    """The project's database: the configured URL, else the embedded server (stopped after)."""
    embedded: EmbeddedPostgres | None = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.state_dir / "pg")
        url = await asyncio.to_thread(embedded.start)
    try:
        async with Database(url, pool_size=settings.pool_size) as database:
            if prepare:
                await prepare_schema(database)
            yield database
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


@contextlib.asynccontextmanager
async def open_project(settings: Settings) -> AsyncIterator[Project]:
    async with open_database(settings) as database:
        catalog = FunctionCatalog(settings.functions_path, RuntimeCommands.from_settings(settings))
        await catalog.reload()
        yield Project(settings, database, catalog)
