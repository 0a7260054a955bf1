"""A stand-in for the host's side of docs/protocol.md: a ROUTER socket, one `Peer` per child.

It answers hello, keeps each child's run state in a dict, records what children send, beats
at the configured interval (unless told to stay silent), and starts real children: cold ones
with `python -m flowhost_worker.child`, warm ones through a real zygote (see test_zygote.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from flowhost_worker.protocol import ErrorCode, ErrorResponse, ProtocolError, Result
from flowhost_worker.rpc import Peer, RemoteError

SDK_SOURCE = str(Path(__file__).resolve().parents[1] / "src")


def child_env(**extra: str) -> dict[str, str]:
    """The scrubbed environment the host gives children (plus the SDK on the path)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": SDK_SOURCE, **extra}


class ReceiptPeer(Peer):
    """As the host does: once a `last` execute is answered, `shutdown` is its receipt, and the
    child exits on it. (A "busy" refusal ran nothing and gets none.)

    Each response is noted in `notes` as ("answer", {"id": id}) as it arrives, so a test sees
    where it came among the notifications."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._connection = connection

    def _settle(self, message: Result | ErrorResponse) -> None:
        self._connection.notes.append(("answer", {"id": message.id}))
        super()._settle(message)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        try:
            answer = await super().call(method, params)
        except RemoteError as exc:
            if exc.code != ErrorCode.BUSY:
                await self._receipt(method, params)
            raise
        await self._receipt(method, params)
        return answer

    async def _receipt(self, method: str, params: dict[str, Any] | None) -> None:
        if method == "execute" and (params or {}).get("last", True):
            with contextlib.suppress(ConnectionError):
                await self.notify("shutdown")


@dataclasses.dataclass
class Connection:
    """The host's view of one child: a `Transport` over the shared ROUTER, and what it saw."""

    host: FakeHost
    worker_id: str
    inbox: asyncio.Queue[bytes] = dataclasses.field(default_factory=asyncio.Queue)
    hello: dict[str, Any] | None = None
    hello_at: float | None = None
    hello_seen: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    notes: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    state: dict[str, Any] = dataclasses.field(default_factory=dict)
    beating: bool = True
    peer: Peer = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.peer = ReceiptPeer(self)

    async def send(self, frame: bytes) -> None:
        await self.host.router.send_multipart([self.worker_id.encode(), frame])

    async def receive(self) -> bytes:
        return await self.inbox.get()


class FakeHost:
    def __init__(self, directory: Path, *, heartbeat_interval: float = 0.5) -> None:
        self.endpoint = f"ipc://{directory}/python.sock"
        self.heartbeat_interval = heartbeat_interval
        self.refuse_protocol = False
        self.context = zmq.asyncio.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(self.endpoint)
        self.connections: dict[str, Connection] = {}
        self._tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(self._route()),
            asyncio.create_task(self._beat()),
            asyncio.create_task(self._recheck()),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.router.close(linger=0)
        self.context.term()

    def connection(self, worker_id: str) -> Connection:
        connection = Connection(self, worker_id)
        self._serve(connection)
        self.connections[worker_id] = connection
        self._tasks.append(asyncio.create_task(connection.peer.serve()))
        return connection

    async def spawn_cold(
        self,
        worker_id: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        *,
        stdout: int = asyncio.subprocess.PIPE,
        stderr: int = asyncio.subprocess.PIPE,
    ) -> tuple[Connection, asyncio.subprocess.Process]:
        connection = self.connection(worker_id)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flowhost_worker.child",
            cwd=cwd,
            env={
                **child_env(FLOWHOST_ENDPOINT=self.endpoint, FLOWHOST_WORKER_ID=worker_id),
                **(env or {}),
            },
            stdout=stdout,
            stderr=stderr,
        )
        return connection, process

    async def _recheck(self) -> None:
        # As the host's router does: a missed edge-triggered wakeup must not stall the test.
        while True:
            await asyncio.sleep(0.1)
            self.router.get(zmq.EVENTS)

    async def _route(self) -> None:
        while True:
            routing_id, *frames = await self.router.recv_multipart()
            connection = self.connections.get(routing_id.decode())
            if connection is not None and len(frames) == 1:
                connection.inbox.put_nowait(frames[0])

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            for connection in list(self.connections.values()):
                if connection.beating and connection.hello is not None:
                    with contextlib.suppress(ConnectionError, zmq.ZMQError):
                        await connection.peer.notify("heartbeat", {})

    def _serve(self, connection: Connection) -> None:
        peer = connection.peer

        async def hello(params: dict[str, Any]) -> Any:
            if self.refuse_protocol:
                raise ProtocolError(
                    ErrorCode.VERSION_MISMATCH, "unsupported protocol", data={"supported": [99]}
                )
            connection.hello, connection.hello_at = params, time.monotonic()
            connection.hello_seen.set()
            return {
                "protocol": 1,
                "host_id": "fake-host",
                "heartbeat_interval": self.heartbeat_interval,
                "max_frame": 8 * 1024 * 1024,
            }

        def recorded(method: str, answer: Any) -> Any:
            async def handle(params: dict[str, Any]) -> Any:
                connection.calls.append((method, params))
                return answer(params) if callable(answer) else answer

            return handle

        def state_set(params: dict[str, Any]) -> None:
            connection.state[params["key"]] = params["value"]

        def state_delete(params: dict[str, Any]) -> dict[str, bool]:
            return {"deleted": connection.state.pop(params["key"], None) is not None}

        peer.on_request("hello", hello)
        peer.on_request(
            "state.get",
            recorded(
                "state.get",
                lambda p: {
                    "found": p["key"] in connection.state,
                    "value": connection.state.get(p["key"]),
                },
            ),
        )
        peer.on_request("state.set", recorded("state.set", state_set))
        peer.on_request("state.delete", recorded("state.delete", state_delete))
        peer.on_request(
            "state.list", recorded("state.list", lambda p: {"keys": sorted(connection.state)})
        )
        peer.on_request("emit", recorded("emit", None))
        peer.on_request("flow.start", recorded("flow.start", {"run_id": "run-2"}))
        peer.on_request("flow.cancel", recorded("flow.cancel", {"canceled": True}))
        peer.on_request("flow.is_running", recorded("flow.is_running", {"running": False}))
        for method in ("log", "progress", "heartbeat", "emit"):
            peer.on_notification(
                method, lambda params, m=method: connection.notes.append((m, params))
            )


def execute_params(
    file: Path,
    handler: str,
    input: Any = None,
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    last: bool = True,
    awaited: dict[str, Any] | None = None,
    hook: dict[str, str] | None = None,
    emits: list[str] | None = None,
) -> dict[str, Any]:
    """`emits`: the step's declared emits, as a host that takes `emit` notifications sends
    them (None: as an older host, which answers `emit` requests)."""
    extra = {
        key: value for key, value in (("awaited", awaited), ("hook", hook)) if value is not None
    }
    declared = {} if emits is None else {"emits": emits}
    return {
        "job": {
            "run_id": "run-1",
            "flow": "orders",
            "step": handler,
            "attempt": 1,
            "max_attempts": 3,
            "idempotency_key": f"key-{handler}",
            "file": str(file),
            "handler": handler,
            **declared,
        },
        "input": input,
        "timeout": timeout,
        "env": env or {},
        "last": last,
        **extra,
    }
