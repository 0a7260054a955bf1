"""Is a value JSON data the host can store? Checked in the child, so that a step gets a clear
error naming the offending place instead of a codec failure or a refusal from the host.

JSON data as docs/protocol.md defines it: maps with string keys, arrays, strings without NUL
characters (Postgres `jsonb` cannot hold them), finite numbers, booleans and nil.
"""

from __future__ import annotations

import math
from typing import Any

# msgpack's packer refuses values nested deeper than 511 levels; a frame wraps the value in a
# few levels of its own.
MAX_DEPTH = 500
# The widest integers msgpack can write.
MIN_INT, MAX_INT = -(2**63), 2**64 - 1


def json_problem(value: Any, where: str = "the value") -> str | None:
    """Why `value` is not JSON data (naming the place, e.g. `result["a"][2]`), or None."""
    return _problem(value, where, 0)


def _problem(value: Any, where: str, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"{where} is nested more than {MAX_DEPTH} levels deep"
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not MIN_INT <= value <= MAX_INT:
            return f"{where} is an integer too large to send ({value.bit_length()} bits)"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, which JSON cannot hold"
    if isinstance(value, str):
        return f"{where} contains a NUL character" if "\x00" in value else None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _problem(item, f"{where}[{index}]", depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} that is not a string"
            problem = _problem(item, f"{where}[{key!r}]", depth + 1)
            if problem is not None:
                return problem
        return None
    return f"{where} is a {type(value).__name__}, which is not JSON data"


def check_json(value: Any, where: str = "the value") -> None:
    """`TypeError` naming the place if `value` is not JSON data."""
    problem = json_problem(value, where)
    if problem is not None:
        raise TypeError(problem)
