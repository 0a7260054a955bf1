"""flowhost.cloudevents against every case of the shared CloudEvents corpus, and the edge cases
it does not cover (tests/unit/test_cloudevents_properties.py has the round trips)."""

from __future__ import annotations

import base64
import json
import pickle
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Headers

from flowhost.cloudevents import NO_DATA, CloudEvent, CloudEventError, content_mode, parse_http
from flowhost.errors import FlowhostError

CORPUS = json.loads(
    (Path(__file__).parents[1] / "fixtures/conformance/cloudevents.json").read_text("utf-8")
)
CASES = {case["id"]: case for case in CORPUS["cases"]}

# The attribute each invalid case is refused for: the verdict is for the rule the case tests,
# not for something else that happens to be wrong in it.
REFUSED_FOR = {
    "ce-s-missing-specversion": "specversion",
    "ce-s-missing-id": "id",
    "ce-s-missing-source": "source",
    "ce-s-missing-type": "type",
    "ce-s-empty-specversion": "specversion",
    "ce-s-empty-id": "id",
    "ce-s-empty-source": "source",
    "ce-s-empty-type": "type",
    "ce-s-null-id": "id",
    "ce-s-specversion-0.1": "specversion",
    "ce-s-id-number": "id",
    "ce-s-data-and-base64": "data_base64",
    "ce-s-ext-uppercase": "comExampleExtension",
    "ce-s-ext-hyphen": "com-example",
    "ce-s-bad-time": "time",
    "ce-s-relative-dataschema": "dataschema",
    "ce-s-empty-subject": "subject",
    "ce-s-int-overflow": "comexampleint",
    "ce-s-bad-base64": "data_base64",
    "ce-s-not-object": None,
    "ce-s-not-json": None,
    "ce-b03": "id",
    "ce-h-missing-specversion": "specversion",
    "ce-h-missing-id": "id",
    "ce-h-missing-source": "source",
    "ce-h-missing-type": "type",
    "ce-h-empty-id": "id",
    "ce-h-specversion-0.1": "specversion",
    "ce-h-datacontenttype-header": "datacontenttype",
    "ce-h-overlong-utf8": "subject",
    "ce-h-bad-time": "time",
    "ce-h-bad-ext-name": "com_example",
}

STRUCTURED = {"Content-Type": "application/cloudevents+json"}
BINARY = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}


def observed(event: CloudEvent) -> dict[str, Any]:
    """An event in the corpus's `expected_event` shape."""
    attributes = {
        name: value
        for name, value in event.to_json().items()
        if name not in ("data", "data_base64")
    }
    data: dict[str, Any] = {"kind": event.data_kind}
    if event.data_kind in ("json", "text"):
        data["value"] = event.data
    elif event.data_kind == "binary":
        data["base64"] = base64.b64encode(event.data).decode("ascii")
    return {"attributes": attributes, "data": data}


def structured(member: dict[str, Any]) -> bytes:
    return json.dumps(
        {"specversion": "1.0", "id": "1", "source": "/s", "type": "t", **member}
    ).encode()


def refusal(headers: Any, body: bytes = b"") -> CloudEventError:
    with pytest.raises(CloudEventError) as caught:
        parse_http(headers, body)
    return caught.value


# The corpus


def test_the_corpus_is_whole() -> None:
    counts = CORPUS["meta"]["counts"]
    assert len(CASES) == len(CORPUS["cases"]) == counts["total"] == 62
    invalid = {case_id for case_id, case in CASES.items() if case["expected"] == "invalid"}
    assert invalid == set(REFUSED_FOR)


@pytest.mark.parametrize("case_id", list(CASES))
def test_corpus_case(case_id: str) -> None:
    case = CASES[case_id]
    body = base64.b64decode(case["body_base64"])
    if case["expected"] == "invalid":
        error = refusal(case["headers"], body)
        assert error.status == 400
        assert error.attribute == REFUSED_FOR[case_id]
        return
    events = parse_http(case["headers"], body)
    expected = case["expected_event"]
    if case["mode"] == "batched":
        assert [observed(event) for event in events] == expected
    else:
        assert [observed(event) for event in events] == [expected]


def test_corpus_headers_work_as_pairs_and_in_any_case() -> None:
    for case in CASES.values():
        if case["expected"] != "valid":
            continue
        body = base64.b64decode(case["body_base64"])
        pairs = [(name.upper(), value) for name, value in case["headers"].items()]
        assert parse_http(pairs, body) == parse_http(case["headers"], body)


# Content modes and media types


@pytest.mark.parametrize(
    ("headers", "mode"),
    [
        ({"Content-Type": "application/cloudevents+json; charset=UTF-8"}, "structured"),
        ({"content-type": "Application/CloudEvents-Batch+JSON"}, "batched"),
        ({"CE-ID": "1"}, "binary"),
        ({"Content-Type": "application/json", "ce-specversion": "1.0"}, "binary"),
        ({"Content-Type": "application/json"}, None),
        ({}, None),
    ],
)
def test_content_mode(headers: dict[str, str], mode: str | None) -> None:
    assert content_mode(headers) == mode


@pytest.mark.parametrize(
    "content_type",
    [
        "application/cloudevents+avro",
        "application/cloudevents",
        "application/cloudevents-batch+protobuf",
        "application/cloudevents-batch",
        "application/cloudevents-like+json",  # the binding goes by the prefix
    ],
)
def test_other_event_formats_are_415(content_type: str) -> None:
    error = refusal({"Content-Type": content_type}, b"{}")
    assert error.status == 415
    assert "unsupported event format" in error.message


def test_a_message_without_cloudevents_headers_is_not_a_cloudevent() -> None:
    error = refusal({"Content-Type": "application/json"}, b'{"name": "x"}')
    assert error.status == 400 and "not a CloudEvent" in error.message


def test_the_error_is_a_value_error_that_crosses_processes() -> None:
    error = refusal([*BINARY.items(), ("ce-time", "soon")])
    assert isinstance(error, ValueError) and isinstance(error, FlowhostError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.message, again.status, again.attribute) == (error.message, 400, "time")


# Headers: repeats, quoting, percent-decoding


def test_repeated_headers_are_refused() -> None:
    error = refusal([*BINARY.items(), ("CE-ID", "2")])
    assert error.attribute == "id" and "more than once" in error.message
    error = refusal([*BINARY.items(), ("content-type", "text/plain"), ("Content-Type", "a/b")])
    assert "Content-Type" in error.message
    # Starlette's Headers (what the route has) shows repeats through items().
    raw = [(k.encode(), v.encode()) for k, v in [*BINARY.items(), ("ce-id", "2")]]
    assert "more than once" in refusal(Headers(raw=raw)).message


@pytest.mark.parametrize(
    ("value", "subject"),
    [
        ('"hello world"', "hello world"),
        (r'"say \"hi\" \\ bye"', 'say "hi" \\ bye'),
        ('"%41"', "A"),  # unquoted first, then percent-decoded
        ("  padded\t", "padded"),
        ("a%25b", "a%b"),
        ("%61%62%63", "abc"),  # unnecessary encoding is accepted
    ],
)
def test_header_values_are_unquoted_then_percent_decoded(value: str, subject: str) -> None:
    [event] = parse_http({**BINARY, "ce-subject": value}, b"")
    assert event.subject == subject


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"unterminated', "unterminated quoted string"),
        ("100%", "percent-encoded byte"),
        ("%zz", "percent-encoded byte"),
        ("%+1", "percent-encoded byte"),
        ("caf\u00e9", "printable US-ASCII"),
        ("%ED%A0%80", "not valid UTF-8"),  # an encoded surrogate
        ("%FF", "not valid UTF-8"),
        ("a%0Ab", "U+000A"),
        ("%EF%BF%BE", "U+FFFE"),  # a noncharacter
    ],
)
def test_bad_header_values_are_refused(value: str, reason: str) -> None:
    error = refusal({**BINARY, "ce-subject": value})
    assert reason in error.message and error.attribute == "subject"


@pytest.mark.parametrize("header", ["ce-data", "ce-", "ce-é", "ce-a.b"])
def test_bad_binary_attribute_names_are_refused(header: str) -> None:
    assert "header" in refusal({**BINARY, header: "x"}).message


def test_binary_extension_values_stay_strings() -> None:
    [event] = parse_http({**BINARY, "ce-count": "5", "ce-flag": "true", "ce-empty": ""}, b"")
    assert dict(event.extensions) == {"count": "5", "flag": "true", "empty": ""}


# Binary-mode data


@pytest.mark.parametrize(
    ("content_type", "body", "kind", "data"),
    [
        ("application/json", b"", "none", NO_DATA),
        ("text/plain", b"", "none", NO_DATA),
        ("application/json", b"null", "json", None),
        ("application/vnd.example+json", b"[1]", "json", [1]),
        ("text/json", b'"x"', "json", "x"),
        ("text/plain; charset=utf-8", "é".encode(), "text", "é"),
        ("text/csv; charset=US-ASCII", b"a,b", "text", "a,b"),
        ("image/svg+xml", b"<svg/>", "text", "<svg/>"),
        ("application/x-custom; charset=utf-8", b"abc", "text", "abc"),
        ("text/plain; charset=iso-8859-1", "é".encode("latin-1"), "binary", b"\xe9"),
        ("text/plain", b"\xff\xfe", "binary", b"\xff\xfe"),  # not the text it claims: kept
        ("application/octet-stream", b"\x00\x01", "binary", b"\x00\x01"),
    ],
)
def test_binary_mode_data(content_type: str, body: bytes, kind: str, data: object) -> None:
    [event] = parse_http({**BINARY, "Content-Type": content_type}, body)
    assert (event.data_kind, event.data, event.datacontenttype) == (kind, data, content_type)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"I'm just a string", "not valid JSON"),  # json-format 3.2: the quotes are needed
        (b"NaN", "not a JSON number"),
        (b'{"a": 1, "a": 2}', "twice"),
        ('"é"'.encode("utf-16"), "not UTF-8"),
    ],
)
def test_binary_json_data_must_be_json(body: bytes, reason: str) -> None:
    error = refusal({**BINARY, "Content-Type": "application/json"}, body)
    assert reason in error.message and error.attribute == "data"


@pytest.mark.parametrize("content_type", ["json", "", "application/json; charset", "a/b c"])
def test_a_content_type_that_is_no_media_type_is_refused(content_type: str) -> None:
    assert refusal({**BINARY, "Content-Type": content_type}, b"x").attribute == "datacontenttype"


# Structured-mode attributes and data


@pytest.mark.parametrize(
    ("member", "attribute", "reason"),
    [
        ({"comexamplefloat": 1.5}, "comexamplefloat", "whole number"),
        ({"comexampleint": 5.0}, "comexampleint", "whole number"),  # integers have no fraction
        ({"comexampleobject": {"a": 1}}, "comexampleobject", "whole number"),
        ({"comexampleint": -(2**31) - 1}, "comexampleint", "Integer range"),
        ({"subject": 5}, "subject", "expected a string"),
        ({"type": "a\u0000b"}, "type", "U+0000"),
        ({"id": "\ufdd0"}, "id", "U+FDD0"),
        ({"source": "a b"}, "source", "URI-reference"),
        ({"source": "1a:b"}, "source", "URI-reference"),  # ':' in a first relative segment
        ({"source": "/%zz"}, "source", "URI-reference"),
        ({"dataschema": ""}, "dataschema", "non-empty"),
        ({"time": "2018-02-30T00:00:00Z"}, "time", "RFC 3339"),
        ({"time": "2018-04-05T17:31:00+24:00"}, "time", "RFC 3339"),
        ({"time": "2018-04-05T17:31:00"}, "time", "RFC 3339"),  # no offset
        (
            {"time": "\uff12\uff10\uff11\uff18-04-05T17:31:00Z"},
            "time",
            "RFC 3339",
        ),  # fullwidth digits
        ({"datacontenttype": "xml"}, "datacontenttype", "media type"),
        ({"datacontenttype": "text/plain", "data": {"a": 1}}, "data", "is a string"),
        ({"data_base64": 5}, "data_base64", "base64 string"),
        ({"data_base64": "Zm9vYg"}, "data_base64", "base64"),  # padding is required
    ],
)
def test_structured_attribute_rules(member: dict[str, Any], attribute: str, reason: str) -> None:
    error = refusal(STRUCTURED, structured(member))
    assert error.attribute == attribute and reason in error.message


def test_a_lone_surrogate_is_not_a_string() -> None:
    body = structured({}).replace(b'"id": "1"', b'"id": "\\udead"')
    assert "U+DEAD" in refusal(STRUCTURED, body).message
    [event] = parse_http(STRUCTURED, body.replace(b"\\udead", b"\\ud83d\\ude00"))
    assert event.id == "\U0001f600"


@pytest.mark.parametrize(
    "member",
    [
        {"source": "http://[::1]:8080/a?b=c#d"},
        {"source": "urn:isbn:0451450523"},
        {"source": "//example.com"},
        {"source": "?q"},
        {"dataschema": "https://example.com/schema.json#/definitions/order"},
        {"time": "1985-04-12T23:20:50.52z"},
        {"time": "2016-12-31T23:59:60Z"},  # a leap second
        {"time": "1990-12-31t15:59:60.123456789-08:00"},
        {"averyveryverylongextensionname": "SHOULD NOT exceed 20 is not MUST NOT"},
        {"comexampleint": 2**31 - 1, "comexampleflag": False, "comexampleempty": ""},
        {"datacontenttype": 'text/plain; charset="utf-8"; format=flowed', "data": "x"},
    ],
)
def test_structured_values_the_spec_allows(member: dict[str, Any]) -> None:
    [event] = parse_http(STRUCTURED, structured(member))
    assert all(
        value == (getattr(event, name) if hasattr(event, name) else event.extensions[name])
        for name, value in member.items()
    )


@pytest.mark.parametrize(
    ("member", "kind", "data"),
    [
        ({"data": None}, "json", None),  # an explicit JSON null is data
        ({"data": None, "datacontenttype": "application/xml"}, "none", NO_DATA),
        ({"data_base64": None, "data": 1}, "json", 1),  # a null data_base64 is unset
        ({"data_base64": ""}, "binary", b""),
        ({"data": "<a/>", "datacontenttype": "application/octet-stream"}, "text", "<a/>"),
    ],
)
def test_structured_data(member: dict[str, Any], kind: str, data: object) -> None:
    [event] = parse_http(STRUCTURED, structured(member))
    assert (event.data_kind, event.data) == (kind, data)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"id": "1", "id": "2"}', "twice"),
        (b'{"specversion": "1.0", "data": {"x": Infinity}}', "not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),  # a byte order mark
        (b'"event"', "JSON object, not str"),
    ],
)
def test_structured_bodies_must_be_strict_json(body: bytes, reason: str) -> None:
    assert reason in refusal(STRUCTURED, body).message


def test_structured_mode_ignores_ce_headers() -> None:
    [event] = parse_http({**STRUCTURED, **BINARY, "ce-id": "from-header"}, structured({}))
    assert event.id == "1"


# Batches


def test_a_batch_is_an_array_and_names_the_bad_event() -> None:
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    assert "JSON array" in refusal(headers, structured({})).message
    good = json.loads(structured({}))
    error = refusal(headers, json.dumps([good, good, {**good, "time": "later"}]).encode())
    assert error.message.startswith("batch event 2: time:")
    assert (error.attribute, error.details["index"]) == ("time", 2)
    assert refusal(headers, json.dumps([good, 5]).encode()).details["index"] == 1


# The CloudEvent value


def test_a_cloud_event_is_checked_when_built() -> None:
    with pytest.raises(CloudEventError, match="id: must be a non-empty string"):
        CloudEvent(id="", source="/s", type="t")
    with pytest.raises(CloudEventError, match="specversion"):
        CloudEvent(id="1", source="/s", type="t", specversion="0.3")
    with pytest.raises(CloudEventError, match="context attribute, not an extension"):
        CloudEvent(id="1", source="/s", type="t", extensions={"subject": "x"})
    with pytest.raises(CloudEventError, match="reserved"):
        CloudEvent(id="1", source="/s", type="t", extensions={"data": "x"})
    with pytest.raises(CloudEventError, match="attribute name 5 is not allowed"):
        CloudEvent(id="1", source="/s", type="t", extensions={5: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        CloudEvent("1", "/s", "t")  # type: ignore[misc]  # keyword-only: no order to mix up


def test_a_cloud_event_is_frozen_and_identified_by_source_and_id() -> None:
    extensions = {"traceparent": "00-abc"}
    event = CloudEvent(id="1", source="/s", type="t", extensions=extensions)
    extensions["traceparent"] = "changed"
    assert event.extensions["traceparent"] == "00-abc"
    with pytest.raises(TypeError):
        event.extensions["traceparent"] = "x"  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        event.id = "2"  # type: ignore[misc]
    same = CloudEvent(id="1", source="/s", type="t", extensions={"traceparent": "00-abc"})
    assert event == same and hash(event) == hash(same)
    assert len({event, same, CloudEvent(id="2", source="/s", type="t")}) == 2


def test_timestamp_is_the_time_as_an_aware_datetime() -> None:
    [event] = parse_http(STRUCTURED, structured({"time": "2018-04-05T17:31:00.1234567+02:00"}))
    assert event.time == "2018-04-05T17:31:00.1234567+02:00"  # kept as sent
    zone = timezone(timedelta(hours=2))
    assert event.timestamp == datetime(2018, 4, 5, 17, 31, 0, 123456, tzinfo=zone)
    assert CloudEvent(id="1", source="/s", type="t").timestamp is None
    leap = CloudEvent(id="1", source="/s", type="t", time="2016-12-31T23:59:60Z").timestamp
    assert leap == datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def test_as_event_names_it_by_type_and_carries_the_json_format() -> None:
    [event] = parse_http(
        {**BINARY, "ce-type": "com.example.order.paid", "ce-traceid": "abc"},
        b"\x00\xff",
    )
    name, payload = event.as_event()
    assert name == "com.example.order.paid"
    assert payload == {
        "specversion": "1.0",
        "id": "1",
        "source": "/s",
        "type": "com.example.order.paid",
        "traceid": "abc",
        "data_base64": "AP8=",
    }
    json.dumps(payload)  # publishable as it is
    # The payload is a structured-mode body that parses back to the same event.
    assert parse_http(STRUCTURED, json.dumps(payload).encode()) == [event]
