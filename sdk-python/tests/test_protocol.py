"""The protocol codec against the golden frames of tests/fixtures/protocol, and hostile bytes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowhost_worker.awaits import Awaited
from flowhost_worker.job import HookCall, parse_execute
from flowhost_worker.protocol import (
    ErrorCode,
    ErrorResponse,
    Notification,
    ProtocolError,
    Request,
    decode_frame,
    encode_message,
)

FRAMES = json.loads(
    (Path(__file__).resolve().parents[2] / "tests/fixtures/protocol/frames.json").read_text()
)


def by_name(kind: str) -> list[Any]:
    return [pytest.param(entry, id=entry["name"]) for entry in FRAMES[kind]]


@pytest.mark.parametrize("entry", by_name("valid"))
def test_valid_frames_decode_to_their_message_and_encode_back_to_the_same_bytes(
    entry: dict[str, Any],
) -> None:
    frame = bytes.fromhex(entry["hex"])
    encoded = encode_message(decode_frame(frame))
    assert encoded.hex() == entry["hex"]
    assert msgpack.unpackb(encoded) == entry["message"]


def execute_frames() -> list[Any]:
    return [
        pytest.param(entry, id=entry["name"])
        for entry in FRAMES["valid"]
        if entry["message"].get("method") == "execute"
    ]


@pytest.mark.parametrize("entry", execute_frames())
def test_every_golden_execute_is_a_job_the_child_reads(entry: dict[str, Any]) -> None:
    params = entry["message"]["params"]
    job = parse_execute(params)
    assert (job.run_id, job.file.name, job.input) == (
        params["job"]["run_id"],
        "charge.py",
        params["input"],
    )
    awaited, hook = params.get("awaited"), params.get("hook")
    assert job.awaited == (None if awaited is None else Awaited(awaited["type"], awaited["data"]))
    assert job.hook == (None if hook is None else HookCall(hook["function"], hook["kind"]))
    assert job.function == (params["job"]["handler"] if hook is None else hook["function"])
    assert job.traceparent == params.get("traceparent")


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        ({"awaited": "webhook"}, "awaited must be null or a map"),
        ({"awaited": {"data": 1}}, "awaited must be null or a map"),
        ({"hook": "mail"}, "hook must be null or a map"),
        ({"hook": {"function": "", "kind": "register"}}, "hook.function"),
        ({"hook": {"function": "mail", "kind": "after"}}, "hook.kind"),
        ({"traceparent": 7}, "traceparent must be null or a W3C traceparent"),
        ({"traceparent": "00-XYZ-00f067aa0ba902b7-01"}, "traceparent must be null or a W3C"),
    ],
)
def test_a_mistyped_awaited_or_hook_is_invalid_params(extra: dict[str, Any], refused: str) -> None:
    [execute] = [e for e in FRAMES["valid"] if e["name"] == "execute"]
    with pytest.raises(ProtocolError, match=refused.replace(".", r"\.")) as caught:
        parse_execute({**execute["message"]["params"], **extra})
    assert caught.value.code == ErrorCode.INVALID_PARAMS


@pytest.mark.parametrize("entry", by_name("tolerated"))
def test_tolerated_frames_decode_to_their_message(entry: dict[str, Any]) -> None:
    message = decode_frame(bytes.fromhex(entry["hex"]))
    assert msgpack.unpackb(encode_message(message)) == entry["message"]


@pytest.mark.parametrize("entry", by_name("invalid"))
def test_invalid_frames_are_refused_with_their_code(entry: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode_frame(bytes.fromhex(entry["hex"]))
    assert refused.value.code == entry["code"], refused.value.message


def test_the_request_id_is_kept_when_it_could_be_read() -> None:
    frame = msgpack.packb({"jsonrpc": "2.0", "id": 7, "method": "", "params": {}})
    with pytest.raises(ProtocolError) as refused:
        decode_frame(frame)
    assert refused.value.id == 7
    assert refused.value.to_response() == ErrorResponse(
        7, ErrorCode.INVALID_REQUEST, "method must be a non-empty string"
    )


def test_a_frame_over_the_limit_is_refused_before_decoding() -> None:
    frame = encode_message(Notification("log", {"message": "x" * 100}))
    with pytest.raises(ProtocolError) as refused:
        decode_frame(frame, max_frame=64)
    assert refused.value.code == ErrorCode.FRAME_TOO_LARGE


def test_protocol_errors_pickle() -> None:
    error = ProtocolError(ErrorCode.BUSY, "busy", id=3, data={"x": 1})
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message, copy.id, copy.data) == (-32005, "busy", 3, {"x": 1})


def test_a_deeply_nested_frame_is_a_parse_error_not_a_crash() -> None:
    frame = b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(ProtocolError) as refused:
        decode_frame(frame)
    assert refused.value.code == ErrorCode.PARSE_ERROR


@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_a_protocol_error(frame: bytes) -> None:
    try:
        message = decode_frame(frame)
    except ProtocolError:
        return
    assert isinstance(encode_message(message), bytes)


def test_requests_round_trip() -> None:
    request = Request(9, "state.set", {"key": "k", "value": [1, 2.5, None, "é"]})
    assert decode_frame(encode_message(request)) == request
