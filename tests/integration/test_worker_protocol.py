"""The host's end of the worker protocol against a hand-written child: every broken message
gets its protocol error, and none of them hangs or stops the host; emit notifications count
with the attempt's answer."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
import zmq.asyncio

from flowhost.settings import load_settings
from flowhost.workers.failures import ChildFailure
from flowhost.workers.processes import ChildProcess, ExitStatus, open_pidfd
from flowhost.workers.router import TRANSPORT_SLACK
from flowhost.workers.supervisor import Supervisor
from flowhost.workers.worker import JobBinding, Worker
from flowhost_worker.protocol import DEFAULT_MAX_FRAME
from flowhost_worker.testing import MemoryBackend

HELLO = {"protocol": 1, "runtime": "python", "sdk_version": "test", "pid": 1}


class FakeChild:
    """A DEALER speaking raw frames, standing in for a child's runtime."""

    def __init__(self, socket: zmq.asyncio.Socket) -> None:
        self.socket = socket
        self._ids = 0

    async def send(self, frame: bytes) -> None:
        await self.socket.send(frame)

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ids += 1
        body = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        await self.send(msgpack.packb(body))
        return await self.answer()

    async def answer(self) -> dict[str, Any]:
        frame = await asyncio.wait_for(self.socket.recv(), 5)
        answer: dict[str, Any] = msgpack.unpackb(frame)
        return answer


@pytest.fixture
async def host_end(tmp_path: Path) -> AsyncIterator[tuple[Worker, FakeChild]]:
    (tmp_path / "functions").mkdir()
    settings = load_settings(tmp_path, environ={})
    async with Supervisor(settings, _commands(), host_id="test-host") as supervisor:
        router = supervisor._routers["python"]
        # A real process stands for the child, so that kills and exits are real too.
        sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[ExitStatus] = loop.create_future()
        loop.run_in_executor(None, lambda: _reap(sleeper, loop, exited))
        process = ChildProcess(sleeper.pid, open_pidfd(sleeper.pid), exited)
        worker = Worker(
            "fake-1",
            "python",
            process,
            router.connect(b"fake-1"),
            host_id="test-host",
            heartbeat_interval=5.0,
            max_frame=DEFAULT_MAX_FRAME,
        )
        context = zmq.asyncio.Context()
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.ROUTING_ID, b"fake-1")
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(router.endpoint)
        try:
            yield worker, FakeChild(dealer)
        finally:
            dealer.close()
            context.term()
            process.kill()
            await exited


def _commands() -> Any:
    from flowhost.workers.commands import RuntimeCommands

    return RuntimeCommands()


def _reap(
    process: subprocess.Popen[bytes],
    loop: asyncio.AbstractEventLoop,
    exited: asyncio.Future[ExitStatus],
) -> None:
    status = ExitStatus.from_returncode(process.wait())
    loop.call_soon_threadsafe(exited.set_result, status)


async def test_hello_is_answered_with_the_host_limits(host_end: tuple[Worker, FakeChild]) -> None:
    worker, child = host_end
    answer = await child.request("hello", HELLO)
    assert answer["result"]["protocol"] == 1
    assert answer["result"]["max_frame"] == DEFAULT_MAX_FRAME
    assert (await worker.ready)["runtime"] == "python"


async def test_a_wrong_protocol_version_is_refused_and_the_child_stopped(
    host_end: tuple[Worker, FakeChild],
) -> None:
    worker, child = host_end
    answer = await child.request("hello", {**HELLO, "protocol": 2})
    assert answer["error"]["code"] == -32001
    assert answer["error"]["data"] == {"supported": [1]}
    status = await asyncio.wait_for(worker.process.exited, 5)
    assert status.signal == 9


async def test_a_call_before_hello_needs_the_handshake(host_end: tuple[Worker, FakeChild]) -> None:
    worker, child = host_end
    answer = await child.request("state.get", {"key": "k"})
    assert answer["error"]["code"] == -32002
    await asyncio.wait_for(worker.process.exited, 5)


async def test_broken_frames_get_their_errors_and_the_connection_lives_on(
    host_end: tuple[Worker, FakeChild],
) -> None:
    _worker, child = host_end
    await child.request("hello", HELLO)
    await child.send(b"\xc1")  # never used in msgpack
    assert (await child.answer())["error"]["code"] == -32700
    await child.send(msgpack.packb([1, 2, 3]))
    assert (await child.answer())["error"]["code"] == -32600
    await child.send(msgpack.packb({"jsonrpc": "2.0", "id": 9, "method": "teleport", "params": {}}))
    answer = await child.answer()
    assert answer["error"]["code"] == -32601 and answer["id"] == 9
    oversized = msgpack.packb(
        {"jsonrpc": "2.0", "id": 10, "method": "log", "params": {"m": b"x" * DEFAULT_MAX_FRAME}}
    )
    assert len(oversized) < DEFAULT_MAX_FRAME + TRANSPORT_SLACK
    await child.send(oversized)
    assert (await child.answer())["error"]["code"] == -32004
    await child.socket.send_multipart([b"one", b"two"])
    assert (await child.answer())["error"]["code"] == -32600
    # Still served after all that:
    answer = await child.request("state.list", {})
    assert answer["error"]["code"] == -32003


async def test_a_job_call_after_the_job_ended_is_refused(
    host_end: tuple[Worker, FakeChild],
) -> None:
    worker, child = host_end
    await child.request("hello", HELLO)
    assert worker.job is None  # no job bound: as after one ended
    for method, params in [
        ("state.get", {"key": "k"}),
        ("state.set", {"key": "k", "value": 1}),
        ("emit", {"name": "x", "payload": None}),
        ("flow.start", {"flow": "f", "input": None}),
    ]:
        answer = await child.request(method, params)
        assert answer["error"]["code"] == -32003, method


async def test_emit_notifications_wait_for_the_answer_and_a_refused_one_fails_the_attempt(
    host_end: tuple[Worker, FakeChild],
) -> None:
    worker, child = host_end
    await child.request("hello", HELLO)
    backend = MemoryBackend()
    job = worker.job = JobBinding(backend, "charge")

    async def notify(method: str, params: dict[str, Any]) -> None:
        await child.send(msgpack.packb({"jsonrpc": "2.0", "method": method, "params": params}))

    await notify("emit", {"name": "order.charged", "payload": {"id": 7}})
    await notify("emit", {"name": "order.noted"})  # payload omitted: null
    # The request form (older SDKs) is still answered, and counts at once. Its answer also
    # shows the notifications before it were handled: frames are handled in order.
    assert (await child.request("emit", {"name": "order.early", "payload": 1}))["result"] is None
    assert backend.emitted == [("order.early", 1)]
    assert job.emits == [("order.charged", {"id": 7}), ("order.noted", None)]
    await job.record_emits()
    assert backend.emitted == [
        ("order.early", 1),
        ("order.charged", {"id": 7}),
        ("order.noted", None),
    ]
    # Sent after the host took the attempt's emits (no SDK does): not part of it.
    await notify("emit", {"name": "order.late", "payload": None})
    assert (await child.request("state.list", {}))["result"] == {"keys": []}
    assert job.emits == [("order.charged", {"id": 7}), ("order.noted", None)]

    # An emit the host refuses fails the attempt, naming the emit and the reason.
    refusing = worker.job = JobBinding(RefusingBackend(), "charge")
    await notify("emit", {"name": "order.unknown", "payload": None})
    await child.request("state.list", {})
    with pytest.raises(ChildFailure) as refused:
        await refusing.record_emits()
    assert refused.value.type == "EmitRefused"
    assert "ctx.emit('order.unknown')" in refused.value.message
    assert "declares emits=[order.charged]" in refused.value.message

    # A malformed emit, or any frame the host cannot read while a job runs, spoils the attempt.
    malformed = worker.job = JobBinding(MemoryBackend(), "charge")
    await notify("emit", {"name": 5, "payload": None})
    await child.request("state.list", {})
    unreadable = worker.job = JobBinding(MemoryBackend(), "charge")
    await child.send(b"\xc1")
    assert (await child.answer())["error"]["code"] == -32700
    for spoiled, reason in [
        (malformed, "an emit without a non-empty string name"),
        (unreadable, "the child sent a frame the host could not read (frame is not valid"),
    ]:
        with pytest.raises(ChildFailure) as broken:
            await spoiled.record_emits()
        assert broken.value.type == "ProtocolError"
        assert reason in broken.value.message

    # An emit that comes after the answer to `execute` spoils the attempt too.
    answered = worker.job = JobBinding(MemoryBackend(), "charge")
    call = asyncio.create_task(worker.execute({"job": {}}))
    execute = await child.answer()
    assert execute["method"] == "execute"
    await notify("emit", {"name": "order.charged", "payload": 1})
    await child.send(msgpack.packb({"jsonrpc": "2.0", "id": execute["id"], "result": {}}))
    await notify("emit", {"name": "order.charged", "payload": 2})
    await child.request("state.list", {})
    assert await call == {}
    with pytest.raises(ChildFailure) as late:
        await answered.record_emits()
    assert "an emit came after the answer" in late.value.message

    # With no job bound, an emit has no attempt to join: dropped.
    worker.job = None
    await notify("emit", {"name": "order.charged", "payload": None})
    assert (await child.request("state.list", {}))["error"]["code"] == -32003


class RefusingBackend(MemoryBackend):
    """Refuses emits as the host's backend does for a name the step does not declare."""

    async def emit(self, name: str, payload: Any) -> None:
        raise ValueError(f"step 'charge' emits {name!r} but declares emits=[order.charged]")
