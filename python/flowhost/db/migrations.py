"""Versioned migrations of the `flowhost` schema (`sql/migrations/NNNN_name.sql`).

Migrations apply in order, each in its own transaction, under an advisory lock so that hosts
starting together do not race. An applied migration whose file changed afterwards is an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import datetime
from importlib import resources
from typing import LiteralString

from flowhost.db.database import Connection
from flowhost.errors import MigrationError

# Any constant works; it only has to be the same in every flowhost process.
MIGRATION_LOCK_KEY = 0x666C6F77686F7374  # "flowhost"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

BOOTSTRAP: LiteralString = """
CREATE SCHEMA IF NOT EXISTS flowhost;
CREATE TABLE IF NOT EXISTS flowhost.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: LiteralString

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: datetime | None


def available_migrations() -> list[Migration]:
    folder = resources.files("flowhost.db").joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            # Package files, never user input (mypy treats LiteralString as str).
            text: LiteralString = entry.read_text(encoding="utf-8")
            found.append(Migration(int(match[1]), match[2], text))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must be 1..n without gaps, found {versions}")
    return found


def migrations_sql() -> str:
    """Every migration in order, as one script (what `flowhost db sql` prints)."""
    parts = [BOOTSTRAP.strip()]
    for migration in available_migrations():
        parts.append(f"-- migration {migration.version:04d}_{migration.name}\n{migration.sql}")
    return "\n\n".join(parts) + "\n"


async def _applied(conn: Connection) -> dict[int, dict[str, object]]:
    exists = await (
        await conn.execute(
            "SELECT to_regclass('flowhost.schema_migrations') IS NOT NULL AS present"
        )
    ).fetchone()
    if not exists or not exists["present"]:
        return {}
    rows = await (
        await conn.execute(
            "SELECT version, name, checksum, applied_at FROM flowhost.schema_migrations"
        )
    ).fetchall()
    return {int(str(row["version"])): row for row in rows}


async def migration_status(conn: Connection) -> list[MigrationStatus]:
    applied = await _applied(conn)
    result = []
    for migration in available_migrations():
        row = applied.get(migration.version)
        at = row["applied_at"] if row else None
        result.append(
            MigrationStatus(
                migration.version, migration.name, at if isinstance(at, datetime) else None
            )
        )
    return result


async def migrate(conn: Connection) -> list[Migration]:
    """Apply the pending migrations; returns those applied. `conn` must be in autocommit."""
    applied_now: list[Migration] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        await conn.execute(BOOTSTRAP)
        applied = await _applied(conn)
        for migration in available_migrations():
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was changed after it "
                        "was applied; add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO flowhost.schema_migrations (version, name, checksum) "
                    "VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            applied_now.append(migration)
    return applied_now
