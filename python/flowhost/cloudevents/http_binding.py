"""The CloudEvents HTTP protocol binding (http-protocol-binding.md): which content mode a
message uses, and its events. Binary mode is decoded here; structured and batched mode bodies
are the JSON format (json_format.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from flowhost.cloudevents import attributes as attrs
from flowhost.cloudevents.event import NO_DATA, CloudEvent, build_event, require_context
from flowhost.cloudevents.json_format import event_from_json, events_from_batch, loads
from flowhost.errors import CloudEventError

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
ContentMode = Literal["binary", "structured", "batched"]

STRUCTURED_JSON = "application/cloudevents+json"
BATCH_JSON = "application/cloudevents-batch+json"

_QUOTED_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}", re.ASCII)


def content_mode(headers: Headers) -> ContentMode | None:
    """The mode a message uses (http binding 3): structured or batched by its Content-Type
    (`application/cloudevents...`, any case), binary if it has any `ce-` header, else None: not
    a CloudEvent at all."""
    pairs = _header_pairs(headers)
    return _mode(_content_type(pairs), pairs)


def parse_http(headers: Headers, body: bytes) -> list[CloudEvent]:
    """The CloudEvents 1.0 events of an HTTP message: one in binary and structured mode, any
    number (none too) in batched mode. `headers` is a mapping or `(name, value)` pairs, names in
    any case; `body` the exact bytes. Raises `CloudEventError` naming the rule broken, with
    `status` 415 for an event format other than JSON and 400 otherwise."""
    pairs = _header_pairs(headers)
    content_type = _content_type(pairs)
    mode = _mode(content_type, pairs)
    if mode is None:
        raise CloudEventError(
            "not a CloudEvent: no ce- headers (binary mode) and the Content-Type is not "
            f"{STRUCTURED_JSON} or {BATCH_JSON}",
            attribute="specversion",
        )
    if mode == "binary":
        return [_binary_event(pairs, content_type, body)]
    essence = content_type.split(";")[0].strip(" \t").lower() if content_type else ""
    expected = STRUCTURED_JSON if mode == "structured" else BATCH_JSON
    if essence != expected:
        raise CloudEventError(
            f"unsupported event format {attrs.shown(essence)}: flowhost reads {STRUCTURED_JSON} "
            f"and {BATCH_JSON}",
            status=415,
        )
    if mode == "structured":
        return [event_from_json(loads(body, "the structured-mode body"))]
    return events_from_batch(loads(body, "the batched-mode body"))


def _header_pairs(headers: Headers) -> list[tuple[str, str]]:
    # A mapping's items() keeps repeated headers where it has them (Starlette's Headers does).
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name.lower(), value) for name, value in items]


def _content_type(pairs: list[tuple[str, str]]) -> str | None:
    found = [value for name, value in pairs if name == "content-type"]
    if len(found) > 1:
        raise CloudEventError("the Content-Type header appears more than once")
    return found[0].strip(" \t") if found else None


def _mode(content_type: str | None, pairs: list[tuple[str, str]]) -> ContentMode | None:
    lowered = (content_type or "").lower()
    if lowered.startswith("application/cloudevents-batch"):
        return "batched"
    if lowered.startswith("application/cloudevents"):
        return "structured"
    return "binary" if any(name.startswith("ce-") for name, _ in pairs) else None


def _binary_event(
    pairs: list[tuple[str, str]], content_type: str | None, body: bytes
) -> CloudEvent:
    found: dict[str, str] = {}
    for header, raw in pairs:
        if not header.startswith("ce-"):
            continue
        name = header[3:]
        try:
            attrs.check_name(name)
        except CloudEventError as error:
            raise CloudEventError(f"header {header}: {error.message}", attribute=name) from None
        if name == "datacontenttype":
            raise CloudEventError(
                "header ce-datacontenttype must not be sent in binary mode: Content-Type carries "
                "datacontenttype (http binding 3.1.1)",
                attribute=name,
            )
        if name in found:
            raise CloudEventError(f"header {header} appears more than once", attribute=name)
        found[name] = _header_value(header, name, raw)
    require_context(found)
    if content_type is not None:
        found["datacontenttype"] = attrs.check_media_type("datacontenttype", content_type)
    return build_event(found, _binary_data(content_type, body))


def _header_value(header: str, name: str, raw: str) -> str:
    """A `ce-` header's value as its attribute's string (http binding 3.1.3.2): a quoted string
    unescaped first (older senders), then one round of percent-decoding to UTF-8."""
    value = raw.strip(" \t")
    if value.startswith('"'):
        quoted = _QUOTED_STRING.fullmatch(value)
        if not quoted:
            raise CloudEventError(f"header {header}: unterminated quoted string", attribute=name)
        value = re.sub(r"\\(.)", r"\1", quoted.group(1))
    if any(not " " <= char <= "~" for char in value):
        raise CloudEventError(
            f"header {header}: header values are printable US-ASCII; other characters are "
            "percent-encoded as UTF-8 (%C3%A9)",
            attribute=name,
        )
    pieces = value.split("%")
    decoded = bytearray(pieces[0].encode("ascii"))
    for piece in pieces[1:]:
        if not _HEX_PAIR.match(piece):
            raise CloudEventError(
                f"header {header}: '%' must start a percent-encoded byte (%25 for '%' itself)",
                attribute=name,
            )
        decoded.append(int(piece[:2], 16))
        decoded += piece[2:].encode("ascii")
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise CloudEventError(
            f"header {header}: the percent-encoded bytes are not valid UTF-8", attribute=name
        ) from None


def _binary_data(content_type: str | None, body: bytes) -> Any:
    """The body as data: JSON parsed for a JSON content type, UTF-8 text kept as `str` for a
    text content type, anything else (or no content type at all) kept as bytes."""
    if not body:
        return NO_DATA
    if content_type is None:
        # JSON is implied only inside the JSON format; a bare body is just bytes.
        return bytes(body)
    if attrs.is_json_media_type(content_type):
        return loads(body, "the body (data)", attribute="data")
    parts = attrs.split_media_type(content_type)
    charset = parts[1].get("charset", "utf-8").lower() if parts else ""
    if attrs.is_text_media_type(content_type) and charset in ("utf-8", "utf8", "us-ascii"):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            pass  # not the text it claims to be: kept whole, as bytes
    return bytes(body)
