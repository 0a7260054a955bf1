"""A form for a trigger's input, generated from its JSON Schema (`config.schema`).

Each property of an object schema becomes a field the page's script reads back into JSON by
its JSON Pointer: text, number, whole number, yes/no, a choice (an `enum`), or a nested group
(an object with properties). What a form cannot say simply (arrays, `anyOf`, untyped values)
is a JSON text field. The server checks the input against the schema when the trigger fires;
its errors point at the fields by the same pointers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 4
STRING_INPUTS = {"date": "date", "date-time": "datetime-local", "email": "email", "uri": "url"}


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    pointer: str  # RFC 6901, into the input
    label: str
    # text | number | integer | boolean | choice | group | json
    kind: str
    required: bool = False
    description: str | None = None
    # The value the field starts with, as the input shows it (JSON text for choice and json).
    initial: str = ""
    checked: bool = False
    input_type: str = "text"
    options: tuple[tuple[str, str], ...] = ()  # (JSON value, label)
    children: tuple[Field, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def form_fields(schema: Any) -> tuple[Field, ...] | None:
    """The fields of an object schema with properties; None when the input is better typed as
    JSON (no schema, or a schema that is not such an object)."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        return None
    if schema.get("type", "object") != "object":
        return None
    return _properties(schema, "", 0)


def _properties(schema: Mapping[str, Any], prefix: str, depth: int) -> tuple[Field, ...]:
    """The fields of an object's properties: the required ones first, in the order `required`
    lists them (a schema stored as jsonb lost its own key order), then the others."""
    listed = [str(n) for n in schema.get("required") or () if n in schema["properties"]]
    required = set(listed)
    names = listed + [str(n) for n in schema["properties"] if str(n) not in required]
    fields = []
    for name in names:
        sub = schema["properties"][name]
        pointer = f"{prefix}/{_escape(str(name))}"
        fields.append(_field(name, sub, pointer, name in required, depth))
    return tuple(fields)


def _field(name: str, schema: Any, pointer: str, required: bool, depth: int) -> Field:
    if not isinstance(schema, Mapping):
        return Field(pointer, name, "json", required)
    label = str(schema.get("title") or name)
    description = schema.get("description")
    common: dict[str, Any] = {
        "required": required,
        "description": description if isinstance(description, str) else None,
    }
    default = schema.get("default")
    kind = schema.get("type")
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        options = tuple((json.dumps(v), str(v)) for v in schema["enum"])
        initial = json.dumps(default) if "default" in schema else ""
        return Field(pointer, label, "choice", options=options, initial=initial, **common)
    if kind == "object" and isinstance(schema.get("properties"), Mapping) and depth < MAX_DEPTH:
        children = _properties(schema, pointer, depth + 1)
        return Field(pointer, label, "group", children=children, **common)
    if kind == "boolean":
        return Field(pointer, label, "boolean", checked=default is True, **common)
    if kind in ("number", "integer"):
        return Field(
            pointer,
            label,
            kind,
            initial="" if default is None else str(default),
            input_type="number",
            minimum=schema.get("minimum"),
            maximum=schema.get("maximum"),
            **common,
        )
    if kind == "string":
        input_type = STRING_INPUTS.get(str(schema.get("format")), "text")
        initial = default if isinstance(default, str) else ""
        return Field(pointer, label, "text", initial=initial, input_type=input_type, **common)
    initial = "" if "default" not in schema else json.dumps(default, indent=2)
    return Field(pointer, label, "json", initial=initial, **common)
