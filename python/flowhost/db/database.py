"""The connection pool and the one place where driver errors become flowhost errors."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from flowhost.errors import DatabaseError, DatabaseUnavailableError

Connection = psycopg.AsyncConnection[dict[str, Any]]


def redact(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(password=)\S+", r"\1***", url)


@contextlib.contextmanager
def wrap_exceptions(url: str) -> Iterator[None]:
    """Turn psycopg and pool errors into DatabaseUnavailableError / DatabaseError."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DatabaseUnavailableError(
            f"cannot reach the database at {redact(url)}: {_first_line(exc)}"
        ) from exc
    except psycopg.Error as exc:
        raise DatabaseError(f"database error: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return redact(text.splitlines()[0])


class Database:
    """An async pool of autocommit connections to one database."""

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 5.0) -> None:
        self.url = url
        self._connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},
            timeout=30.0,
        )

    async def open(self) -> None:
        # One direct connection first: it fails fast with the server's own reason
        # ("connection refused", "database does not exist"), where the pool would just time out.
        with wrap_exceptions(self.url):
            probe = await psycopg.AsyncConnection.connect(
                self.url, connect_timeout=max(1, int(self._connect_timeout))
            )
            await probe.close()
            await self._pool.open(wait=True, timeout=self._connect_timeout)

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection in autocommit mode: each statement commits on its own."""
        with wrap_exceptions(self.url):
            async with self._pool.connection() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside one transaction: all or nothing."""
        with wrap_exceptions(self.url):
            async with self._pool.connection() as conn, conn.transaction():
                yield conn

    @contextlib.asynccontextmanager
    async def dedicated_connection(self) -> AsyncIterator[Connection]:
        """A connection of its own, outside the pool (for LISTEN or the queue consumer)."""
        with wrap_exceptions(self.url):
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, row_factory=dict_row
            )
            try:
                yield conn
            finally:
                await conn.close()
