"""A Postgres server for the whole test session, and a fresh database per test.

The server is the embedded one (or `FLOWHOST_TEST_DATABASE_URL`'s); a template database gets the
flowhost schema and PgQueuer once, and each test gets `CREATE DATABASE ... TEMPLATE` of it.
"""

from __future__ import annotations

import itertools
import os

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

TEMPLATE = "flowhost_template"
_counter = itertools.count()


def with_database(url: str, name: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


def create_database(admin_url: str, template: str | None = None) -> str:
    name = f"flowhost_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        conn.execute(statement)
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
