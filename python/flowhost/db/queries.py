"""The SQL of flowhost, loaded from `sql/queries.sql` blocks headed `-- name: <query>`."""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString, cast

_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


def load_queries(resource: str = "queries.sql") -> dict[str, LiteralString]:
    text = resources.files("flowhost.db").joinpath("sql", resource).read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise RuntimeError(f"query {name!r} is defined twice in {resource}")
        # The text comes from a file shipped in this package, never from user input.
        queries[name] = cast(LiteralString, body.strip())
    return queries


QUERIES = load_queries()
