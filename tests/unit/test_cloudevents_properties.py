"""flowhost.cloudevents round trips: events built at random, encoded in each HTTP content mode
by an encoder written here from the spec (not by flowhost), parse back to themselves; and
any message at all parses or raises CloudEventError, never anything else."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flowhost.cloudevents import NO_DATA, CloudEvent, CloudEventError, parse_http

CORE = {"specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time"}

# A CloudEvents String: no control characters, surrogates or unassigned code points (the
# noncharacters are among these).
STRINGS = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn")))
NON_EMPTY = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn")), min_size=1)
SEGMENT = st.from_regex(r"[A-Za-z0-9._~!$&'()*+,;=@:-]{1,8}", fullmatch=True)
SOURCES = st.sampled_from(
    ["urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66", "1-555-123-4567", "https://a.example/x?y#z"]
) | st.lists(SEGMENT, max_size=4).map(lambda segments: "/" + "/".join(segments))
NAMES = st.from_regex(r"[a-z0-9]{1,25}", fullmatch=True).filter(
    lambda name: name not in CORE and name != "data"
)
EXTENSION_VALUES = STRINGS | st.integers(-(2**31), 2**31 - 1) | st.booleans()
ZONES = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
TIMES = st.datetimes(timezones=ZONES)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4),
    max_leaves=12,
)
DATA = st.one_of(
    st.tuples(st.sampled_from([None, "application/json", "text/plain"]), st.just(NO_DATA)),
    st.tuples(
        st.sampled_from([None, "application/json", "text/json", "application/x+json; a=b"]), JSON
    ),
    st.tuples(
        st.sampled_from(["text/plain", "text/xml; charset=utf-8", "application/xml"]),
        st.text(st.characters(blacklist_categories=("Cs",))),
    ),
    st.tuples(st.sampled_from([None, "application/octet-stream", "image/png"]), st.binary()),
)


@st.composite
def events(draw: st.DrawFn) -> CloudEvent:
    content_type, data = draw(DATA)
    time = draw(st.none() | TIMES)
    return CloudEvent(
        id=draw(NON_EMPTY),
        source=draw(SOURCES),
        type=draw(NON_EMPTY),
        datacontenttype=content_type,
        dataschema=draw(st.none() | st.sampled_from(["https://a.example/s.json", "urn:x:y#v1"])),
        subject=draw(st.none() | NON_EMPTY),
        time=None if time is None else time.isoformat(),
        extensions=draw(st.dictionaries(NAMES, EXTENSION_VALUES, max_size=4)),
        data=data,
    )


def percent_encoded(text: str, *, everything: bool, lower: bool) -> str:
    """http binding 3.1.3.2: space, '"', '%' and all but printable ASCII as %XY of their UTF-8
    bytes; `everything` also encodes what needs no encoding (which receivers MUST accept)."""
    out = []
    for char in text:
        if everything or char in ' "%' or not "\x21" <= char <= "\x7e":
            out.extend(f"%{byte:02x}" if lower else f"%{byte:02X}" for byte in char.encode())
        else:
            out.append(char)
    return "".join(out)


def canonical(value: object) -> str:
    """An attribute value's canonical string (spec.md, Type System)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def binary_message(
    event: CloudEvent, *, everything: bool, lower: bool, upper_names: bool
) -> tuple[list[tuple[str, str]], bytes]:
    attributes: dict[str, Any] = {name: getattr(event, name) for name in CORE - {"datacontenttype"}}
    attributes.update(event.extensions)
    headers = [
        (
            f"ce-{name}".upper() if upper_names else f"ce-{name}",
            percent_encoded(canonical(value), everything=everything, lower=lower),
        )
        for name, value in attributes.items()
        if value is not None
    ]
    content_type = event.datacontenttype
    if content_type is None and event.data_kind == "json":
        content_type = "application/json"  # json-format 3.1.2: the implied type made explicit
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if event.data_kind == "json":
        body = json.dumps(event.data).encode()
    elif event.data_kind == "text":
        body = event.data.encode()
    else:
        body = b"" if event.data is NO_DATA else event.data
    return headers, body


@given(events())
def test_structured_round_trip(event: CloudEvent) -> None:
    body = json.dumps(event.to_json(), ensure_ascii=False).encode()
    assert parse_http({"Content-Type": "application/cloudevents+json"}, body) == [event]


@given(st.lists(events(), max_size=4))
def test_batched_round_trip(batch: list[CloudEvent]) -> None:
    body = json.dumps([event.to_json() for event in batch]).encode()
    headers = {"content-type": "application/cloudevents-batch+json; charset=utf-8"}
    assert parse_http(headers, body) == batch


@given(events(), st.booleans(), st.booleans(), st.booleans())
def test_binary_round_trip(
    event: CloudEvent, everything: bool, lower: bool, upper_names: bool
) -> None:
    headers, body = binary_message(
        event, everything=everything, lower=lower, upper_names=upper_names
    )
    expected = replace(
        event,
        # Headers carry strings: an extension's type is for the receiver that knows it.
        extensions={name: canonical(value) for name, value in event.extensions.items()},
        datacontenttype=dict((k.lower(), v) for k, v in headers).get("content-type"),
        data=event.data if body else NO_DATA,  # an empty body is no data
    )
    assert parse_http(headers, body) == [expected]


@given(TIMES)
def test_timestamp_reads_back_the_time(time: datetime) -> None:
    event = CloudEvent(id="1", source="/s", type="t", time=time.isoformat())
    assert event.timestamp == time and event.timestamp.utcoffset() == time.utcoffset()


HEADER_NAMES = st.sampled_from(
    [
        *("ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject"),
        *("ce-dataschema", "ce-datacontenttype", "ce-data", "ce-x", "CE-X", "content-type"),
        *("Content-Type", "other"),
    ]
) | st.text(max_size=8)
HEADER_VALUES = st.sampled_from(
    [
        *("1.0", "/s", "application/json", "application/cloudevents+json", "text/plain"),
        *("application/cloudevents-batch+json", "2018-04-05T17:31:00Z", '"q"', "%4"),
        *("%C3%A9", "%C0%A0", ""),
    ]
) | st.text(max_size=12)
MEMBERS = st.sampled_from([*sorted(CORE), "data", "data_base64", "x", "X-Y"]) | STRINGS
OBJECTS = st.dictionaries(MEMBERS, JSON | st.sampled_from(["1.0", "/s", "AP8=", "a/b"]), max_size=8)
BODIES = (
    st.binary(max_size=40)
    | JSON.map(json.dumps).map(str.encode)
    | OBJECTS.map(json.dumps).map(str.encode)
    | st.lists(OBJECTS, max_size=3).map(json.dumps).map(str.encode)
)


RANDOM_MESSAGES = st.tuples(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=10), BODIES)


@st.composite
def mutated_messages(draw: st.DrawFn) -> tuple[list[tuple[str, str]], bytes]:
    """A valid message in one of the modes with a few things changed: these reach the checks
    that random messages rarely get past the required attributes to."""
    event = draw(events())
    if draw(st.booleans()):
        headers, body = binary_message(event, everything=False, lower=False, upper_names=False)
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(headers)))
            header = draw(st.tuples(HEADER_NAMES, HEADER_VALUES))
            headers[at : at + draw(st.integers(0, 1))] = draw(st.sampled_from([[], [header]]))
        return headers, draw(st.just(body) | BODIES)
    member = event.to_json()
    for _ in range(draw(st.integers(1, 3))):
        name = draw(MEMBERS | st.sampled_from(sorted(member)))
        member[name] = draw(JSON | HEADER_VALUES)
    batched = draw(st.booleans())
    content_type = (
        "application/cloudevents-batch+json" if batched else "application/cloudevents+json"
    )
    return [("Content-Type", content_type)], json.dumps([member] if batched else member).encode()


@given(RANDOM_MESSAGES | mutated_messages())
def test_any_message_parses_or_is_refused_with_cloud_event_error(
    message: tuple[list[tuple[str, str]], bytes],
) -> None:
    headers, body = message
    try:
        parsed = parse_http(headers, body)
    except CloudEventError as error:
        assert error.status in (400, 415) and error.message
        return
    for event in parsed:  # what parses is a valid event: it survives its own JSON format
        again = json.dumps(event.to_json()).encode()
        assert parse_http({"Content-Type": "application/cloudevents+json"}, again) == [event]
