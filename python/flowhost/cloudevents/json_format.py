"""The CloudEvents JSON event format (json-format.md): one event as a JSON object, a batch as a
JSON array of them."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flowhost.cloudevents import attributes as attrs
from flowhost.cloudevents.event import NO_DATA, CloudEvent, build_event, require_context
from flowhost.errors import CloudEventError


def loads(body: bytes, what: str, *, attribute: str | None = None) -> Any:
    """Strict JSON (RFC 8259): UTF-8, no NaN or Infinity, no member name twice in an object
    (two `id`s would leave it to the parser which one counts)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CloudEventError(f"{what} is not UTF-8: {error}", attribute=attribute) from None

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, member in pairs:
            if key in obj:
                raise CloudEventError(
                    f"{what} has the member {attrs.shown(key)} twice in one object",
                    attribute=attribute,
                )
            obj[key] = member
        return obj

    def no_constant(name: str) -> Any:
        raise CloudEventError(
            f"{what} is not JSON: {name} is not a JSON number", attribute=attribute
        )

    try:
        return json.loads(text, object_pairs_hook=unique, parse_constant=no_constant)
    except json.JSONDecodeError as error:
        raise CloudEventError(f"{what} is not valid JSON: {error}", attribute=attribute) from None
    except RecursionError:
        raise CloudEventError(f"{what} is nested too deeply", attribute=attribute) from None


def event_from_json(value: object) -> CloudEvent:
    """A `CloudEvent` from a decoded JSON-format event. A `null` member is an unset attribute
    (json-format 2.2); `data: null` is data, a JSON null (3.1.1)."""
    if not isinstance(value, dict):
        hint = " (an array of events is a batch)" if isinstance(value, list) else ""
        raise CloudEventError(
            f"a structured CloudEvent is a JSON object, not {type(value).__name__}{hint}"
        )
    encoded = value.get("data_base64")
    if encoded is not None and "data" in value:
        raise CloudEventError(
            "data and data_base64 are mutually exclusive: an event has one or the other",
            attribute="data_base64",
        )
    attributes = {
        name: member
        for name, member in value.items()
        if member is not None and name not in ("data", "data_base64")
    }
    require_context(attributes)
    content_type = attributes.get("datacontenttype")
    if encoded is not None:
        data: Any = _base64(encoded)
    elif "data" not in value:
        data = NO_DATA
    elif value["data"] is None and isinstance(content_type, str):
        # null is the JSON null when the data is JSON; for other data it means no data.
        data = None if attrs.is_json_media_type(content_type) else NO_DATA
    else:
        data = value["data"]
    return build_event(attributes, data)


def events_from_batch(value: object) -> list[CloudEvent]:
    if not isinstance(value, list):
        raise CloudEventError(
            f"a CloudEvents batch is a JSON array of events, not {type(value).__name__}"
        )
    events = []
    for index, item in enumerate(value):
        try:
            events.append(event_from_json(item))
        except CloudEventError as error:
            raise CloudEventError(
                f"batch event {index}: {error.message}", attribute=error.attribute, index=index
            ) from None
    return events


def _base64(encoded: object) -> bytes:
    if not isinstance(encoded, str):
        raise CloudEventError(
            f"data_base64: expected a base64 string, got {attrs.shown(encoded)}",
            attribute="data_base64",
        )
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise CloudEventError(
            "data_base64: not valid base64 (RFC 4648: A-Z a-z 0-9 + /, padded with =)",
            attribute="data_base64",
        ) from None
