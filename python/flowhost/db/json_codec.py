"""JSON text for Postgres: orjson where it can, the standard library where orjson refuses.

Every jsonb parameter, event batch and job payload is dumped on the hot paths (a webhook fire
dumps its payload three times: run input, fire event, answer); orjson does it 5-10 times
faster than `json.dumps`. What orjson refuses (keys that are not strings, integers beyond 64
bits, lone surrogates) goes through `json.dumps` as before, so any value dumps as it did.

Values reach here already checked: data from users and steps passes `store.json_data.as_json`
first, which refuses NaN and infinities (orjson would write them as null). Reading stays with
the standard library: orjson reads integers beyond 64 bits as floats, losing digits that a
jsonb number keeps.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import psycopg
from psycopg.adapt import AdaptersMap
from psycopg.types.json import set_json_dumps


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:
        # ASCII with escapes: a lone surrogate reaches Postgres as `\ud800`, which it refuses
        # with an error of its own, instead of failing to encode here.
        return json.dumps(value, separators=(",", ":")).encode()


def dumps_text(value: Any) -> str:
    """Compact JSON text (a `::jsonb` parameter, a jsonb_to_recordset document)."""
    return dumps(value).decode()


# The adapters of flowhost's connections: psycopg's, with `Jsonb(...)` dumped by `dumps`
# (copied into each connection, so a user's own psycopg connections keep the defaults).
ADAPTERS = AdaptersMap(psycopg.adapters)
set_json_dumps(dumps, ADAPTERS)
