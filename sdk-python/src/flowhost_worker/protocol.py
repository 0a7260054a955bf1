"""The worker protocol's messages and frames (docs/protocol.md, version 1).

A frame is one msgpack value: a JSON-RPC 2.0 message. `decode_frame` checks every rule of the
contract and raises `ProtocolError` with the JSON-RPC code the peer must be answered with;
`encode_message` writes the canonical bytes (the golden frames of tests/fixtures/protocol hold
both sides to them). Shared by the host and the child runtime.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NoReturn, TypeAlias

import msgpack  # type: ignore[import-untyped]  # ships no type information

from flowhost_worker.errors import WorkerError

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)
DEFAULT_MAX_FRAME = 8 * 1024 * 1024
MAX_ID = 2**53 - 1  # ids stay exact as JavaScript numbers


class ErrorCode(enum.IntEnum):
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    VERSION_MISMATCH = -32001
    HANDSHAKE_REQUIRED = -32002
    NO_JOB_RUNNING = -32003
    FRAME_TOO_LARGE = -32004
    BUSY = -32005
    STEP_FAILED = -32050
    CANCELLED = -32051
    STEP_TIMED_OUT = -32052
    HANDLER_NOT_LOADABLE = -32053
    ACTION_FAILED = -32054


class ProtocolError(WorkerError):
    """A frame or call broke the protocol; `code` is what the peer is answered with.

    `id` is the offending request's id when it could be read (else None): the error response
    carries it.
    """

    def __init__(self, code: int, message: str, *, id: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message
        self.id = id
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message), {"id": self.id, "data": self.data})

    def to_response(self) -> ErrorResponse:
        return ErrorResponse(self.id, self.code, self.message, self.data)


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    id: int
    method: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    id: int
    result: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorResponse:
    id: int | None
    code: int
    message: str
    data: Any = None  # None: no `data` key


Message: TypeAlias = Request | Notification | Result | ErrorResponse


def encode_message(message: Message) -> bytes:
    """The canonical frame of `message` (key order of docs/protocol.md, smallest forms)."""
    body: dict[str, Any] = {"jsonrpc": "2.0"}
    if isinstance(message, Request):
        body |= {"id": message.id, "method": message.method, "params": message.params}
    elif isinstance(message, Notification):
        body |= {"method": message.method, "params": message.params}
    elif isinstance(message, Result):
        body |= {"id": message.id, "result": message.result}
    else:
        error: dict[str, Any] = {"code": int(message.code), "message": message.message}
        if message.data is not None:
            error["data"] = message.data
        body |= {"id": message.id, "error": error}
    frame: bytes = msgpack.packb(body, use_bin_type=True)
    return frame


def decode_frame(frame: bytes, *, max_frame: int = DEFAULT_MAX_FRAME) -> Message:
    """The message in `frame`; `ProtocolError` with the code of the broken rule otherwise."""
    if len(frame) > max_frame:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE, f"frame of {len(frame)} bytes exceeds {max_frame}"
        )
    try:
        value = msgpack.unpackb(
            frame, raw=False, strict_map_key=False, ext_hook=_refuse_extension, use_list=True
        )
    except Exception as exc:  # msgpack raises several types; every one means "not a frame"
        raise ProtocolError(ErrorCode.PARSE_ERROR, f"frame is not valid msgpack: {exc}") from exc
    return _message(value)


def _refuse_extension(code: int, data: bytes) -> NoReturn:
    raise ValueError(f"extension type {code} is not allowed")


def _message(value: Any) -> Message:
    if not isinstance(value, dict):
        _invalid(f"a message is a map, not {_kind(value)}")
    if any(not isinstance(key, str) for key in value):
        _invalid("message keys must be strings")
    id_ = _read_id(value)
    if value.get("jsonrpc") != "2.0":
        _invalid('"jsonrpc" must be "2.0"', id_)
    if "method" in value:
        return _call(value, id_)
    has_result, has_error = "result" in value, "error" in value
    if has_result == has_error:
        _invalid(
            "a message is a request, a notification, or a response with one of result/error", id_
        )
    if has_result:
        if id_ is None:
            _invalid("a result needs an id")
        return Result(id_, value["result"])
    return _error_response(value["error"], id_, "id" in value)


def _read_id(value: dict[str, Any]) -> int | None:
    if "id" not in value or value["id"] is None:
        return None
    id_ = value["id"]
    if isinstance(id_, bool) or not isinstance(id_, int) or not 0 <= id_ <= MAX_ID:
        _invalid(f"id must be an integer from 0 to {MAX_ID}")
    return id_


def _call(value: dict[str, Any], id_: int | None) -> Request | Notification:
    method = value["method"]
    if not isinstance(method, str) or not method:
        _invalid("method must be a non-empty string", id_)
    params = value.get("params", {})
    if not isinstance(params, dict) or any(not isinstance(key, str) for key in params):
        _invalid("params must be a map with string keys", id_)
    if "result" in value or "error" in value:
        _invalid("a call has no result or error", id_)
    return Notification(method, params) if id_ is None else Request(id_, method, params)


def _error_response(error: Any, id_: int | None, has_id: bool) -> ErrorResponse:
    if not has_id:
        _invalid("an error response needs an id (null when unknown)")
    if not isinstance(error, dict):
        _invalid("error must be a map", id_)
    code, message = error.get("code"), error.get("message")
    if isinstance(code, bool) or not isinstance(code, int):
        _invalid("error.code must be an integer", id_)
    if not isinstance(message, str):
        _invalid("error.message must be a string", id_)
    return ErrorResponse(id_, code, message, error.get("data"))


def _invalid(message: str, id_: int | None = None) -> NoReturn:
    raise ProtocolError(ErrorCode.INVALID_REQUEST, message, id=id_)


def _kind(value: Any) -> str:
    kinds: dict[type, str] = {list: "an array", str: "a string", bytes: "bytes"}
    return kinds.get(type(value), type(value).__name__)
