"""What the event store accepts as data: JSON that Postgres `jsonb` can hold.

`jsonb` refuses some of what JSON text allows: NUL characters in strings (`\\u0000`) and lone
surrogates; and JSON has no NaN or infinities. Data from step code is checked here before it
reaches a transaction, so a bad value fails its own attempt with a clear message instead of
failing the batch of results it would have been written with.
"""

from __future__ import annotations

import json
import re
from typing import Any

# `\u0000` in JSON text, escaped by an odd number of backslashes (an even number escapes a
# backslash followed by the letters "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")
REPLACEMENT = "\ufffd"


def as_json(value: Any, what: str) -> Any:
    """`value` as plain JSON data that Postgres can store; a TypeError naming `what` if not."""
    return json.loads(json_text(value, what))


def json_text(value: Any, what: str) -> str:
    """`value` as JSON text that Postgres `jsonb` accepts; a TypeError naming `what` if not."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        text.encode()
    except UnicodeEncodeError as exc:
        raise TypeError(f"{what} must not contain lone surrogates: {exc.reason}") from exc
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from exc
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise TypeError(f"{what} must not contain NUL characters: Postgres cannot store them")
    return text


def as_loose_json(value: Any) -> Any:
    """`value` as JSON data, never failing: for logs and error reports, where losing the entry
    would be worse than a changed value. Objects become their `repr`, NaN and infinities their
    names, NUL characters U+FFFD and lone surrogates `?`."""
    text = storable_text(json.dumps(value, default=repr, ensure_ascii=False))
    if "\\u0000" in text:
        text = _NUL_ESCAPE.sub(r"\1\\ufffd", text)
    return json.loads(text, parse_constant=str)


def storable_text(text: str) -> str:
    """`text` as Postgres `text` and `jsonb` can hold it: NUL characters become U+FFFD, lone
    surrogates `?`."""
    if "\0" in text:
        text = text.replace("\0", REPLACEMENT)
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")
