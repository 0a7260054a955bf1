"""JSON Pointers (RFC 6901): `/tenant/id` names a value inside a JSON document. Pure."""

from __future__ import annotations

import re
from typing import Any

# `~` must be followed by 0 (for `~`) or 1 (for `/`).
_BAD_ESCAPE = re.compile(r"~(?![01])")


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The reference tokens of `pointer` ("" is the whole document); ValueError if invalid."""
    if not isinstance(pointer, str):
        raise ValueError(f"a JSON Pointer is a string (got {pointer!r})")
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON Pointer starts with '/' (got {pointer!r})")
    if _BAD_ESCAPE.search(pointer):
        raise ValueError(f"in a JSON Pointer '~' is followed by 0 or 1 (got {pointer!r})")
    return tuple(token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/"))


def resolve(document: Any, pointer: str) -> tuple[bool, Any]:
    """(True, the value `pointer` names in `document`), or (False, None) if there is none."""
    value = document
    for token in parse_pointer(pointer):
        if isinstance(value, dict):
            if token not in value:
                return False, None
            value = value[token]
        elif isinstance(value, list):
            # RFC 6901: an array index is 0 or digits without a leading zero.
            if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
                return False, None
            index = int(token)
            if index >= len(value):
                return False, None
            value = value[index]
        else:
            return False, None
    return True, value
