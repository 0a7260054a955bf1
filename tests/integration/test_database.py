"""The connection pool's options: session settings and pipelined transactions."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from flowhost.db.database import Database, in_pipeline
from flowhost.errors import DatabaseError


async def _setting(conn: psycopg.AsyncConnection[dict[str, object]], name: str) -> object:
    row = await (await conn.execute("SELECT current_setting(%s) AS value", [name])).fetchone()
    assert row is not None
    return row["value"]


async def test_a_session_pool_starts_its_connections_with_its_settings(database_url: str) -> None:
    # The URL's own options stay; the session's come after them.
    url = make_conninfo(database_url, options="-c work_mem=7MB")
    async with Database(url, pool_size=2) as plain:
        hot = plain.with_session({"plan_cache_mode": "force_generic_plan"}, pool_size=1)
        async with hot:
            async with hot.connection() as conn:
                assert await _setting(conn, "plan_cache_mode") == "force_generic_plan"
                assert await _setting(conn, "work_mem") == "7MB"
            async with hot.dedicated_connection(session={"synchronous_commit": "off"}) as conn:
                assert await _setting(conn, "synchronous_commit") == "off"
                assert await _setting(conn, "plan_cache_mode") == "force_generic_plan"
        async with plain.connection() as conn:
            assert await _setting(conn, "plan_cache_mode") == "auto"


async def test_a_pipelined_transaction_commits_or_rolls_back_as_a_whole(
    database: Database,
) -> None:
    async with database.connection() as conn:
        await conn.execute("CREATE TABLE pipelined (id int PRIMARY KEY)")
    async with database.transaction(pipeline=True) as conn:
        assert in_pipeline(conn)
        await conn.execute("INSERT INTO pipelined VALUES (1)")
        await conn.execute("INSERT INTO pipelined VALUES (2)")
    # The second statement fails on the server; the first, sent before it, is rolled back.
    with pytest.raises(DatabaseError, match="duplicate key"):
        async with database.transaction(pipeline=True) as conn:
            await conn.execute("INSERT INTO pipelined VALUES (3)")
            await conn.execute("INSERT INTO pipelined VALUES (1)")
    async with database.connection() as conn:
        assert not in_pipeline(conn)
        rows = await (await conn.execute("SELECT id FROM pipelined ORDER BY id")).fetchall()
    assert [row["id"] for row in rows] == [1, 2]
