"""ctx.publish and ctx.http in the Python SDK: arguments checked and turned into the protocol's
params before anything is sent; a host's -32054 answer becomes ActionError in a child."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowhost_worker import ActionError
from flowhost_worker.protocol import ErrorCode
from flowhost_worker.rpc import RemoteError
from flowhost_worker.rpc_backend import RpcBackend
from flowhost_worker.testing import MemoryBackend, context_for


async def test_payloads_are_sent_as_bytes_json_text_or_as_given() -> None:
    backend = MemoryBackend()
    ctx = context_for(backend, run_id="r-1", step="send")
    sent = await ctx.publish.mqtt("plant/out", {"t": 21.5}, qos=2, user_properties={"a": "b"})
    queued = await ctx.publish.amqp("orders", "new", "hello", headers={"n": 1}, persistent=False)
    raw = await ctx.publish.amqp("", "jobs", b"\x00\xff", connector="rabbit", message_id="m-1")
    assert sent == {"connector": None, "topic": "plant/out", "qos": 2, "retain": False, "size": 10}
    assert queued["routed"] is True and raw["message_id"] == "m-1"
    (_, mqtt), (_, text), (_, data) = backend.published
    assert json.loads(mqtt["payload"]) == {"t": 21.5}
    assert mqtt["properties"] == {"user_properties": [["a", "b"]]}
    assert text["body"] == b"hello" and text["content_type"] == "text/plain; charset=utf-8"
    assert text["persistent"] is False and text["headers"] == {"n": 1}
    assert data["body"] == b"\x00\xff" and data["content_type"] == "application/octet-stream"
    assert data["connector"] == "rabbit"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda ctx: ctx.publish.mqtt("", 1), ValueError),
        (lambda ctx: ctx.publish.mqtt("t", 1, qos=3), ValueError),
        (lambda ctx: ctx.publish.mqtt("t", 1, retain="yes"), TypeError),
        (lambda ctx: ctx.publish.mqtt("t", {1, 2}), TypeError),
        (lambda ctx: ctx.publish.amqp("x", 5), TypeError),
        (lambda ctx: ctx.publish.amqp("x", "k", headers={"a": float("nan")}), TypeError),
        (lambda ctx: ctx.http("FETCH", "https://x.test"), ValueError),
        (lambda ctx: ctx.http("GET", "https://x.test", timeout=0), ValueError),
        (lambda ctx: ctx.http("GET", "https://x.test", body="a", json={}), ValueError),
        (lambda ctx: ctx.http("GET", "https://x.test", auth={"type": "digest"}), ValueError),
        (lambda ctx: ctx.http("GET", "https://x.test", headers={"a": 1}), TypeError),
        (lambda ctx: ctx.http("GET", "https://x.test", max_response_bytes=10 << 20), ValueError),
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_sent(call: Any, error: type) -> None:
    backend = MemoryBackend()
    with pytest.raises(error):
        await call(context_for(backend))
    assert backend.published == [] and backend.requests == []


async def test_http_params_and_a_json_body() -> None:
    backend = MemoryBackend()
    backend.http_handler = lambda request: {"status": 202, "json": {"ok": 1}}
    answer = await context_for(backend).http(
        "post",
        "https://x.test/{run_id}",
        json={"a": "{secret:S}"},
        query={"q": "{uuid}"},
        auth={"type": "bearer", "token": "{secret:S}"},
        timeout=2,
    )
    assert answer == {"status": 202, "ok": True, "headers": {}, "body": "", "json": {"ok": 1}}
    [request] = backend.requests
    assert request["method"] == "POST" and request["url"] == "https://x.test/{run_id}"
    assert request["body"] == b'{"a":"{secret:S}"}'  # bytes: JSON data is never expanded
    assert request["headers"] == {"Content-Type": "application/json"}
    assert request["auth"] == {"type": "bearer", "token": "{secret:S}"}
    assert request["timeout"] == 2.0 and request["max_response_bytes"] == 1024 * 1024


async def test_without_a_handler_a_memory_backend_refuses_http() -> None:
    with pytest.raises(Exception, match="http_handler"):
        await context_for(MemoryBackend()).http("GET", "https://x.test")


class _RefusingPeer:
    async def call(self, method: str, params: dict[str, Any]) -> Any:
        raise RemoteError(ErrorCode.ACTION_FAILED, f"{method}: the broker is down")


class _Notifier:
    async def flush(self) -> None:
        pass


async def test_a_failed_action_is_an_action_error_in_a_child() -> None:
    backend = RpcBackend(_RefusingPeer(), _Notifier())  # type: ignore[arg-type]
    with pytest.raises(ActionError, match=r"publish\.mqtt: the broker is down"):
        await context_for(backend).publish.mqtt("t", 1)  # type: ignore[arg-type]
