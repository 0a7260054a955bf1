"""The SQL of flowhost: every `sql/queries/*.sql` file, in blocks headed `-- name: <query>`.

Files group queries by the part of flowhost that owns them; a name is unique across all of them.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import LiteralString, cast

_HEADER = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


def load_queries(folder: str = "queries") -> dict[str, LiteralString]:
    queries: dict[str, LiteralString] = {}
    files = resources.files("flowhost.db").joinpath("sql", folder)
    for resource in sorted(files.iterdir(), key=lambda f: f.name):
        if not resource.name.endswith(".sql"):
            continue
        parts = _HEADER.split(resource.read_text(encoding="utf-8"))
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise RuntimeError(f"query {name!r} is defined twice (again in {resource.name})")
            # The text comes from a file shipped in this package, never from user input.
            queries[name] = cast(LiteralString, body.strip())
    return queries


QUERIES = load_queries()
