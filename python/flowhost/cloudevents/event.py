"""`CloudEvent`: one valid CloudEvents 1.0 event, and how it becomes a flowhost event."""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal

from flowhost.cloudevents import attributes as attrs
from flowhost.errors import CloudEventError

DataKind = Literal["none", "json", "text", "binary"]
ExtensionValue = str | int | bool


class _NoData(enum.Enum):
    NO_DATA = "NO_DATA"

    def __repr__(self) -> str:
        return "NO_DATA"


NO_DATA: Final = _NoData.NO_DATA
"""`CloudEvent.data` of an event without data (a JSON `null` is data: `None`)."""


@dataclass(frozen=True, kw_only=True)
class CloudEvent:
    """A CloudEvents 1.0 event. Every instance is valid: the constructor checks each attribute
    against the spec's type system and raises `flowhost.errors.CloudEventError` naming it.

    Attribute values are kept as they were sent (`time` too: `timestamp` is the datetime).
    `data` is a JSON value when the content type is JSON or absent, `str` for other text,
    `bytes` for binary data, or `NO_DATA`; `data_kind` says which.
    """

    id: str
    source: str
    type: str
    specversion: str = attrs.SPECVERSION
    datacontenttype: str | None = None
    dataschema: str | None = None
    subject: str | None = None
    time: str | None = None
    extensions: Mapping[str, ExtensionValue] = field(default_factory=dict)
    data: Any = NO_DATA

    def __post_init__(self) -> None:
        if self.specversion != attrs.SPECVERSION:
            _wrong_specversion(self.specversion)
        attrs.check_string("id", self.id, non_empty=True)
        attrs.check_uri_reference("source", self.source)
        attrs.check_string("type", self.type, non_empty=True)
        if self.datacontenttype is not None:
            attrs.check_media_type("datacontenttype", self.datacontenttype)
        if self.dataschema is not None:
            attrs.check_uri("dataschema", self.dataschema)
        if self.subject is not None:
            attrs.check_string("subject", self.subject, non_empty=True)
        if self.time is not None:
            attrs.check_timestamp("time", self.time)
        for name, value in self.extensions.items():
            attrs.check_name(name)
            if name in attrs.CORE:
                raise CloudEventError(
                    f"{name} is a context attribute, not an extension", attribute=name
                )
            attrs.check_extension_value(name, value)
        if not (self.data is NO_DATA or isinstance(self.data, bytes)) and not (
            attrs.is_json_media_type(self.datacontenttype) or isinstance(self.data, str)
        ):
            raise CloudEventError(
                f"data: with datacontenttype {attrs.shown(self.datacontenttype)}, which is not "
                "JSON, data is a string (text) or bytes (data_base64)",
                attribute="data",
            )
        # Frozen all the way down: nobody changes an event's extensions behind its back.
        object.__setattr__(self, "extensions", MappingProxyType(dict(self.extensions)))

    def __hash__(self) -> int:
        # source + id identify an event (spec.md, id); equal events share them.
        return hash((self.source, self.id))

    @property
    def data_kind(self) -> DataKind:
        if self.data is NO_DATA:
            return "none"
        if isinstance(self.data, bytes):
            return "binary"
        return "json" if attrs.is_json_media_type(self.datacontenttype) else "text"

    @property
    def timestamp(self) -> datetime | None:
        """`time` as an aware datetime (to the microsecond), or None."""
        return None if self.time is None else attrs.parse_timestamp(self.time)

    def to_json(self) -> dict[str, Any]:
        """The event in the CloudEvents JSON format (what structured mode sends): attributes
        and extensions as members, then `data` (JSON value or text) or `data_base64` (bytes)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in attrs.REQUIRED}
        out.update(
            {
                name: getattr(self, name)
                for name in attrs.OPTIONAL
                if getattr(self, name) is not None
            }
        )
        out.update(self.extensions)
        kind = self.data_kind
        if kind == "binary":
            out["data_base64"] = base64.b64encode(self.data).decode("ascii")
        elif kind != "none":
            out["data"] = self.data
        return out

    def as_event(self) -> tuple[str, dict[str, Any]]:
        """`(name, payload)` to publish to flowhost: the name is the CloudEvent `type` (what
        event triggers and event awaits match), the payload is `to_json()`."""
        return self.type, self.to_json()


def _wrong_specversion(value: object) -> None:
    if value is None:
        raise CloudEventError("specversion: required attribute is missing", attribute="specversion")
    raise CloudEventError(
        f"specversion: flowhost reads CloudEvents 1.0; got {attrs.shown(value)}",
        attribute="specversion",
    )


def require_context(attributes: Mapping[str, object]) -> None:
    """The checks that come first: a known specversion, then the required attributes present
    (before anything about the data is read)."""
    if attributes.get("specversion") != attrs.SPECVERSION:
        _wrong_specversion(attributes.get("specversion"))
    for name in attrs.REQUIRED:
        if name not in attributes:
            raise CloudEventError(f"{name}: required attribute is missing", attribute=name)


def build_event(attributes: Mapping[str, object], data: Any) -> CloudEvent:
    """A `CloudEvent` from decoded attributes (unset ones left out) and data."""
    require_context(attributes)
    core: dict[str, Any] = {name: attributes[name] for name in attrs.CORE if name in attributes}
    extensions: dict[str, Any] = {
        name: value for name, value in attributes.items() if name not in attrs.CORE
    }
    return CloudEvent(**core, extensions=extensions, data=data)
