"""The Postgres server of a bench run, and a fresh database per use of it.

`FLOWHOST_DATABASE_URL` or `DATABASE_URL` names an existing server (its database is used only to
run CREATE/DROP DATABASE); otherwise the project's embedded server is started in
`bench/.flowhost/pg` and stopped again by `close()`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

URL_VARIABLES = ("FLOWHOST_DATABASE_URL", "DATABASE_URL")
EMBEDDED_DATA_DIR = Path(__file__).resolve().parent / ".flowhost" / "pg"
ADMIN_DATABASE = "flowhost_bench"
NAME_PREFIX = "bench_"
MAX_IDENTIFIER = 63  # NAMEDATALEN - 1


class DatabaseServer:
    """One server for the whole run; `fresh_database()` hands out throwaway databases on it."""

    def __init__(self, admin_url: str, source: str, embedded: Any = None) -> None:
        self.admin_url = admin_url
        self.source = source  # "embedded" or the environment variable that named the server
        self._embedded = embedded
        with psycopg.connect(admin_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            self.version: str = row[0] if row else "unknown"
            if embedded is not None:
                _drop_stale_databases(conn)

    @classmethod
    def open(cls) -> DatabaseServer:
        """The configured server, or the embedded one (started here, stopped by `close`)."""
        for variable in URL_VARIABLES:
            if url := os.environ.get(variable):
                return cls(url, variable)
        try:
            from flowhost.db.embedded import EmbeddedPostgres
        except ImportError as exc:
            raise SystemExit(
                "bench: no FLOWHOST_DATABASE_URL/DATABASE_URL and flowhost is not importable "
                f"({exc}); install flowhost into the venv or run with PYTHONPATH=python"
            ) from exc
        embedded = EmbeddedPostgres(EMBEDDED_DATA_DIR)
        print(f"bench: starting embedded PostgreSQL in {EMBEDDED_DATA_DIR}", file=sys.stderr)
        url = embedded.start(ADMIN_DATABASE)
        try:
            return cls(url, "embedded", embedded)
        except BaseException:
            embedded.stop()
            raise

    def close(self) -> None:
        """Release the embedded server (it stops unless another process holds it); idempotent."""
        if self._embedded is not None:
            embedded, self._embedded = self._embedded, None
            embedded.stop()

    def __enter__(self) -> DatabaseServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextlib.asynccontextmanager
    async def fresh_database(self, label: str) -> AsyncIterator[str]:
        """Create an empty database, yield its URL, drop it (forcibly) on the way out."""
        name = database_name(label, os.getpid(), uuid.uuid4().hex[:8])
        identifier = sql.Identifier(name)
        async with await psycopg.AsyncConnection.connect(self.admin_url, autocommit=True) as conn:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
        try:
            yield database_url(self.admin_url, name)
        finally:
            async with await psycopg.AsyncConnection.connect(
                self.admin_url, autocommit=True
            ) as conn:
                await conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier)
                )


def database_name(label: str, pid: int, suffix: str) -> str:
    """`bench_<pid>_<label>_<suffix>`, lower-case, at most 63 characters, suffix kept whole."""
    clean = re.sub(r"[^a-z0-9_]+", "_", label.lower()).strip("_")
    head = f"{NAME_PREFIX}{pid}_"
    room = MAX_IDENTIFIER - len(head) - len(suffix) - 1
    return f"{head}{clean[:room]}_{suffix}" if clean else f"{head}{suffix}"


def database_url(url: str, database: str) -> str:
    """The same server and options as `url`, another database. Keeps a URL a URL."""
    if "://" not in url:
        return make_conninfo(url, dbname=database)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _drop_stale_databases(conn: psycopg.Connection[Any]) -> None:
    # A run killed with SIGKILL cannot drop its databases. On the embedded server (local, so
    # the pid in a name can be checked) drop those whose process is gone. Only the embedded
    # server gets here, so flowhost is importable.
    from flowhost.db.embedded import process_alive

    pattern = re.compile(rf"^{NAME_PREFIX}(\d+)_")
    for (name,) in conn.execute("SELECT datname FROM pg_database").fetchall():
        match = pattern.match(name)
        if match and not process_alive(int(match.group(1))):
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
