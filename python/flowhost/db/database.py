"""The connection pool and the one place where driver errors become flowhost errors."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from flowhost.db.json_codec import ADAPTERS
from flowhost.errors import DatabaseError, DatabaseUnavailableError

Connection = psycopg.AsyncConnection[dict[str, Any]]
T = TypeVar("T")
U = TypeVar("U")


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


def in_pipeline(conn: Connection) -> bool:
    """Whether `conn` is in pipeline mode (`Database.transaction(pipeline=True)`)."""
    return conn.pgconn.pipeline_status != pq.PipelineStatus.OFF


class Deferred(Generic[T]):
    """A statement's answer, read later: in pipeline mode the statement is only sent, and
    `result()` waits for it (with every statement sent before it) in one round trip. Send the
    statements of a transaction that do not depend on each other first, then read."""

    def __init__(
        self, cursor: psycopg.AsyncCursor[dict[str, Any]], parse: Callable[[list[Any]], T]
    ) -> None:
        self._cursor = cursor
        self._parse = parse

    async def result(self) -> T:
        return self._parse(await self._cursor.fetchall())

    def then(self, parse: Callable[[T], U]) -> Deferred[U]:
        """The same answer, parsed further by `parse`."""
        first = self._parse
        return Deferred(self._cursor, lambda rows: parse(first(rows)))


def _options(url: str, session: Mapping[str, str]) -> dict[str, str]:
    """The libpq `options` that start a session with `session`'s settings, after those the
    URL's own `options` set (a keyword argument would replace them)."""
    if not session:
        return {}
    given = conninfo_to_dict(url).get("options") or ""
    ours = " ".join(f"-c {name}={value}" for name, value in session.items())
    return {"options": f"{given} {ours}".strip()}


class Database:
    """An async pool of autocommit connections to one database."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        connect_timeout: float = 5.0,
        session: Mapping[str, str] | None = None,
    ) -> None:
        """`session`: settings (GUCs) every connection starts with, on top of the URL's."""
        self.url = url
        self._connect_timeout = connect_timeout
        self._session = dict(session or {})
        self._pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "context": ADAPTERS,
                **_options(url, self._session),
            },
            timeout=30.0,
        )

    def with_session(self, session: Mapping[str, str], *, pool_size: int) -> Database:
        """Another pool on the same database, its connections starting with `session` (open
        it before use)."""
        return Database(
            self.url,
            pool_size=pool_size,
            connect_timeout=self._connect_timeout,
            session={**self._session, **session},
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

    async def discard_broken(self) -> None:
        """Test the pool's idle connections and replace those that no longer work: after the
        server restarted or cut them, each would otherwise fail once when next handed out,
        and a caller that backs off per failure would take that many back-offs to recover."""
        with contextlib.suppress(psycopg.Error, PoolTimeout):
            await self._pool.check()

    async def __aenter__(self) -> Database:
        await self.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def connection(self, *, timeout: float | None = None) -> AsyncIterator[Connection]:
        """A pooled connection in autocommit mode: each statement commits on its own.
        `timeout`: seconds to wait for one (default: the pool's 30) before
        DatabaseUnavailableError."""
        with wrap_exceptions(self.url):
            async with self._pool.connection(timeout=timeout) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, pipeline: bool = False, timeout: float | None = None
    ) -> AsyncIterator[Connection]:
        """A pooled connection inside one transaction: all or nothing.

        `pipeline`: in libpq's pipeline mode, where a statement whose rows are not read yet
        does not wait for the server: statements go out together, BEGIN with the first, and
        reading a result waits for all those sent before it. For hot transactions written
        for it (see `Deferred`); COPY is not available there. `timeout`: as `connection`'s."""
        with wrap_exceptions(self.url):
            async with self._pool.connection(timeout=timeout) as conn:
                if not pipeline:
                    async with conn.transaction():
                        yield conn
                    return
                async with conn.pipeline(), conn.transaction():
                    yield conn

    @contextlib.asynccontextmanager
    async def dedicated_connection(
        self, *, session: Mapping[str, str] | None = None
    ) -> AsyncIterator[Connection]:
        """A connection of its own, outside the pool (for LISTEN or the queue consumer),
        starting with the pool's `session` settings and these."""
        with wrap_exceptions(self.url):
            conn = await psycopg.AsyncConnection.connect(
                make_conninfo(self.url, **_options(self.url, {**self._session, **(session or {})})),
                autocommit=True,
                row_factory=dict_row,
                context=ADAPTERS,
            )
            try:
                yield conn
            finally:
                await conn.close()
