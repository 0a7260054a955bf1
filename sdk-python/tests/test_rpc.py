"""Two peers over an in-memory transport: calls, errors, hostile frames, closing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest

from flowhost_worker.protocol import (
    ErrorCode,
    ErrorResponse,
    ProtocolError,
    Request,
    Result,
    decode_frame,
)
from flowhost_worker.rpc import MemoryTransport, Peer, RemoteError

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def peers() -> AsyncIterator[tuple[Peer, Peer, MemoryTransport]]:
    left_end, right_end = MemoryTransport.pair()
    left, right = Peer(left_end, max_frame=1024), Peer(right_end, max_frame=1024)
    serving = [asyncio.create_task(peer.serve()) for peer in (left, right)]
    yield left, right, left_end
    left_end.close()
    await asyncio.gather(*serving)


async def test_a_call_gets_its_result_and_concurrent_calls_are_matched_by_id(
    peers: tuple[Peer, Peer, MemoryTransport],
) -> None:
    left, right, _ = peers

    async def echo(params: dict[str, Any]) -> Any:
        await asyncio.sleep(params["delay"])
        return params["value"]

    right.on_request("echo", echo)
    results = await asyncio.gather(
        left.call("echo", {"delay": 0.02, "value": "slow"}),
        left.call("echo", {"delay": 0.0, "value": "fast"}),
    )
    assert results == ["slow", "fast"]


async def test_errors_reach_the_caller_with_code_and_data(
    peers: tuple[Peer, Peer, MemoryTransport],
) -> None:
    left, right, _ = peers

    async def refuse(params: dict[str, Any]) -> Any:
        raise ProtocolError(ErrorCode.INVALID_PARAMS, "key must not be empty", data={"f": "key"})

    async def crash(params: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    right.on_request("refuse", refuse)
    right.on_request("crash", crash)
    with pytest.raises(RemoteError) as refused:
        await left.call("refuse")
    assert (refused.value.code, refused.value.data) == (ErrorCode.INVALID_PARAMS, {"f": "key"})
    with pytest.raises(RemoteError) as crashed:
        await left.call("crash")
    assert crashed.value.code == ErrorCode.INTERNAL_ERROR and "boom" in crashed.value.message
    with pytest.raises(RemoteError) as unknown:
        await left.call("nope")
    assert unknown.value.code == ErrorCode.METHOD_NOT_FOUND


async def test_notifications_are_delivered_and_never_answered(
    peers: tuple[Peer, Peer, MemoryTransport],
) -> None:
    left, right, _ = peers
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    right.on_notification("log", seen.put_nowait)
    await left.notify("log", {"message": "hi"})
    await left.notify("unknown", {})  # dropped, logged
    assert await asyncio.wait_for(seen.get(), 1) == {"message": "hi"}


async def test_hostile_frames_get_protocol_errors_and_the_peer_keeps_serving() -> None:
    raw, far_end = MemoryTransport.pair()
    peer = Peer(far_end, max_frame=64)

    async def ping(params: dict[str, Any]) -> str:
        return "pong"

    peer.on_request("ping", ping)
    serving = asyncio.create_task(peer.serve())
    hostile = [
        b"\xc1",
        msgpack.packb({"jsonrpc": "2.0", "id": 4, "method": ""}),
        msgpack.packb({"jsonrpc": "2.0", "id": 5, "method": "x" * 100}),
        msgpack.packb({"jsonrpc": "2.0", "id": 6, "method": "nope", "params": {}}),
    ]
    for frame in hostile:
        await raw.send(frame)
    answers = [decode_frame(await asyncio.wait_for(raw.receive(), 1)) for _ in hostile]
    assert all(isinstance(answer, ErrorResponse) for answer in answers)
    assert sorted((a.id or 0, a.code) for a in answers if isinstance(a, ErrorResponse)) == [
        (0, ErrorCode.PARSE_ERROR),  # no id could be read: null
        (0, ErrorCode.FRAME_TOO_LARGE),
        (4, ErrorCode.INVALID_REQUEST),
        (6, ErrorCode.METHOD_NOT_FOUND),
    ]
    await raw.send(msgpack.packb({"jsonrpc": "2.0", "id": 7, "method": "ping", "params": {}}))
    assert decode_frame(await asyncio.wait_for(raw.receive(), 1)) == Result(7, "pong")
    raw.close()
    await serving


async def test_pending_calls_fail_when_the_connection_closes() -> None:
    left_end, right_end = MemoryTransport.pair()
    left, right = Peer(left_end), Peer(right_end)

    async def never(params: dict[str, Any]) -> Any:
        await asyncio.Event().wait()

    right.on_request("never", never)
    serving = [asyncio.create_task(peer.serve()) for peer in (left, right)]
    call = asyncio.create_task(left.call("never"))
    await asyncio.sleep(0.01)
    left_end.close()
    with pytest.raises(ConnectionError):
        await call
    await asyncio.gather(*serving)
    with pytest.raises(ConnectionError):
        await left.call("never")


async def test_plain_notification_handlers_run_in_frame_order_before_a_later_response() -> None:
    # The host relies on it: a child's emits (notifications) sent before its answer are all
    # handled before the answer is seen, and `on_response` marks that moment exactly.
    raw, far_end = MemoryTransport.pair()
    seen: list[Any] = []
    peer = Peer(far_end, on_broken_frame=lambda error: seen.append(("broken", error.code)))
    peer.on_notification("emit", lambda params: seen.append(("emit", params["n"])))
    serving = asyncio.create_task(peer.serve())
    call = asyncio.create_task(peer.call("execute", on_response=lambda: seen.append("answer")))
    request = decode_frame(await asyncio.wait_for(raw.receive(), 1))
    assert isinstance(request, Request)
    # All of it queued before the peer reads any: one dispatch runs after the other.
    for n in range(3):
        await raw.send(msgpack.packb({"jsonrpc": "2.0", "method": "emit", "params": {"n": n}}))
    await raw.send(b"\xc1")
    await raw.send(msgpack.packb({"jsonrpc": "2.0", "id": request.id, "result": "done"}))
    await raw.send(msgpack.packb({"jsonrpc": "2.0", "method": "emit", "params": {"n": 3}}))
    assert await asyncio.wait_for(call, 1) == "done"
    assert seen[:5] == [
        ("emit", 0),
        ("emit", 1),
        ("emit", 2),
        ("broken", ErrorCode.PARSE_ERROR),
        "answer",
    ]
    raw.close()
    await serving
    assert seen[5:] == [("emit", 3)]
