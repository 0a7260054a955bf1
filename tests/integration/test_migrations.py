"""All migrations applied equal the canonical schema.sql; migrating is idempotent and guarded."""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg
import pytest

from flowhost.db.database import Database
from flowhost.db.migrations import MigrationError, available_migrations, migrate, migration_status
from flowhost.project import prepare_schema

# Everything that makes up the schema, as comparable rows.
CATALOG = {
    "columns": """
        SELECT table_name, column_name, data_type, is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'flowhost'
        ORDER BY table_name, column_name""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'flowhost'::regnamespace
        ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'flowhost' ORDER BY 1, 2""",
    "functions": """
        SELECT proname, pg_get_functiondef(oid) FROM pg_proc
        WHERE pronamespace = 'flowhost'::regnamespace ORDER BY 1""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'flowhost.%' ORDER BY 1, 2""",
}


def catalog(url: str) -> dict[str, list[Any]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CATALOG.items()}


async def test_all_migrations_equal_the_canonical_schema(
    empty_database_url: str, database_url: str, admin_url: str
) -> None:
    from tests.support.databases import create_database, drop_database, with_database

    async with Database(empty_database_url) as database:
        await prepare_schema(database)
    canonical = create_database(admin_url)
    try:
        url = with_database(admin_url, canonical)
        schema = resources.files("flowhost.db").joinpath("sql", "schema.sql").read_text()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(schema)  # type: ignore[call-overload]
        migrated, expected = catalog(empty_database_url), catalog(url)
        assert migrated["columns"], "the migrated schema is empty"
        for part in CATALOG:
            assert migrated[part] == expected[part], part
    finally:
        drop_database(admin_url, canonical)


async def test_migrating_twice_changes_nothing(database: Database) -> None:
    async with database.connection() as conn:
        assert await migrate(conn) == []
        status = await migration_status(conn)
    assert [s.version for s in status] == [m.version for m in available_migrations()]
    assert all(s.applied_at is not None for s in status)


async def test_an_edited_applied_migration_is_refused(database: Database) -> None:
    async with database.connection() as conn:
        await conn.execute("UPDATE flowhost.schema_migrations SET checksum = 'x' WHERE version = 1")
        with pytest.raises(MigrationError, match="was changed after it was applied"):
            await migrate(conn)


async def test_pgqueuer_is_installed_beside_flowhost(database: Database) -> None:
    async with database.connection() as conn:
        row = await (await conn.execute("SELECT to_regclass('pgqueuer') AS queue")).fetchone()
    assert row is not None and row["queue"] == "pgqueuer"
