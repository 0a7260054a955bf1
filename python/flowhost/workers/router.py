"""The host's ROUTER socket of one runtime: one frame transport per child, by routing id."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import zmq
import zmq.asyncio

from flowhost_worker.protocol import ErrorCode, ErrorResponse, encode_message

logger = logging.getLogger(__name__)

# ZeroMQ drops a message above this size at the transport (the child is disconnected); between
# max_frame and it, the protocol answers "frame too large" (docs/protocol.md, Framing).
TRANSPORT_SLACK = 64 * 1024
HIGH_WATER_MARK = 1000
# ZeroMQ's notification fd is edge-triggered, and a wakeup can be missed once a high-water mark
# was reached (libzmq#3641). Reading ZMQ_EVENTS makes pyzmq re-check and serve what is ready, so
# the router does it this often: a missed wakeup then costs a moment, never a hang.
EVENTS_RECHECK = 0.1


class RouterTransport:
    """The host's end of one child's connection (`flowhost_worker.rpc.Transport`)."""

    def __init__(self, router: Router, worker_id: bytes) -> None:
        self._router = router
        self.worker_id = worker_id
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.last_heard = asyncio.get_running_loop().time()

    async def send(self, frame: bytes) -> None:
        await self._router.send(self.worker_id, frame)

    async def receive(self) -> bytes:
        frame = await self._inbox.get()
        if frame is None:
            self._inbox.put_nowait(None)
            raise ConnectionError("the child's connection is closed")
        return frame

    def deliver(self, frame: bytes) -> None:
        self.last_heard = asyncio.get_running_loop().time()
        self._inbox.put_nowait(frame)

    def close(self) -> None:
        self._inbox.put_nowait(None)


class Router:
    def __init__(self, context: zmq.asyncio.Context, endpoint: str, *, max_frame: int) -> None:
        self.endpoint = endpoint
        self._socket = context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        self._socket.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        # Sending to a child that is gone raises (EHOSTUNREACH) instead of dropping silently.
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._socket.setsockopt(zmq.MAXMSGSIZE, max_frame + TRANSPORT_SLACK)
        self._socket.bind(endpoint)
        self._transports: dict[bytes, RouterTransport] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._receive(), name=f"flowhost-router {self.endpoint}"),
            asyncio.create_task(self._recheck(), name=f"flowhost-router-recheck {self.endpoint}"),
        ]

    async def _recheck(self) -> None:
        while not self._socket.closed:
            await asyncio.sleep(EVENTS_RECHECK)
            with contextlib.suppress(zmq.ZMQError):
                self._socket.get(zmq.EVENTS)

    def connect(self, worker_id: bytes) -> RouterTransport:
        """Accept frames from `worker_id` (a child the host is starting)."""
        transport = self._transports[worker_id] = RouterTransport(self, worker_id)
        return transport

    def disconnect(self, worker_id: bytes) -> None:
        transport = self._transports.pop(worker_id, None)
        if transport is not None:
            transport.close()

    async def send(self, worker_id: bytes, frame: bytes) -> None:
        try:
            await self._socket.send_multipart([worker_id, frame], copy=len(frame) < 65536)
        except zmq.ZMQError as exc:
            raise ConnectionError(f"cannot reach worker {worker_id.decode()}: {exc}") from exc

    async def _receive(self) -> None:
        while True:
            try:
                parts = await self._socket.recv_multipart()
            except zmq.ZMQError as exc:
                if exc.errno == zmq.ENOTSOCK:
                    return
                logger.warning("receiving on %s failed: %s", self.endpoint, exc)
                continue
            worker_id, frames = parts[0], parts[1:]
            transport = self._transports.get(worker_id)
            if transport is None:
                logger.warning("dropped a message from unknown worker %r", worker_id[:64])
                continue
            if len(frames) == 1:
                transport.deliver(frames[0])
                continue
            transport.last_heard = asyncio.get_running_loop().time()
            refusal = ErrorResponse(
                None, ErrorCode.INVALID_REQUEST, "a message must be exactly one frame"
            )
            with contextlib.suppress(ConnectionError):
                await self.send(worker_id, encode_message(refusal))

    async def close(self) -> None:
        for worker_id in list(self._transports):
            self.disconnect(worker_id)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._socket.close(linger=0)
