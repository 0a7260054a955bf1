"""The child's end of the connection to the host: a ZeroMQ DEALER socket (docs/protocol.md,
"Transport" and "Framing"), as an `rpc.Transport` for `Peer`."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import zmq
import zmq.asyncio

from flowhost_worker.protocol import ErrorCode, ErrorResponse, encode_message

logger = logging.getLogger(__name__)

HIGH_WATER_MARK = 1000  # messages each way: a flooding peer blocks on its own send
MAX_ROUTING_ID = 64
# pyzmq's asyncio socket can miss the edge-triggered wakeup of its ZeroMQ fd once a high-water
# mark was hit (libzmq#3641; seen here with a burst of notifications: a send that never
# completed although the host had read everything). Reading ZMQ_EVENTS makes pyzmq re-check
# and serve what is ready, so the transport does it this often while it lives.
EVENTS_RECHECK = 0.1


class DealerTransport:
    """Connects to the host's ROUTER at `endpoint` with `routing_id` as the ZeroMQ identity.

    Owns its ZeroMQ context: a child has exactly one connection, and a context must never be
    shared across a fork (the zygote creates none).
    """

    def __init__(self, endpoint: str, routing_id: str) -> None:
        encoded = routing_id.encode("ascii")  # UnicodeEncodeError names the bad character
        if not 0 < len(encoded) <= MAX_ROUTING_ID:
            raise ValueError(f"a routing id is 1 to {MAX_ROUTING_ID} ASCII bytes")
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.ROUTING_ID, encoded)
        # A dead host must not keep the child alive; close(flush=...) opts into a bounded wait.
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
        self._socket.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close(linger=0)
            self._context.term()
            raise ValueError(f"cannot connect to {endpoint!r}: {exc}") from exc
        self._closed = False
        self._send_lock = asyncio.Lock()
        self._recheck: asyncio.Task[None] | None = None

    def has_pending(self) -> bool:
        """Whether a message is waiting to be received."""
        events = 0 if self._closed else int(self._socket.getsockopt(zmq.EVENTS))
        return bool(events & zmq.POLLIN)

    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise ConnectionError("the transport is closed")
        self._watch_events()
        async with self._send_lock:  # frames leave in the order they were sent
            try:
                await self._socket.send(frame)
            except zmq.ZMQError as exc:
                raise ConnectionError(f"sending failed: {exc}") from exc

    async def _recheck_events(self) -> None:
        while not self._closed:
            await asyncio.sleep(EVENTS_RECHECK)
            with contextlib.suppress(zmq.ZMQError):
                self._socket.get(zmq.EVENTS)

    def _watch_events(self) -> None:
        if self._recheck is None and not self._closed:
            self._recheck = asyncio.create_task(self._recheck_events())

    async def receive(self) -> bytes:
        self._watch_events()
        while True:
            parts = await self._receive_parts()
            if len(parts) == 1:
                return parts[0]
            await self._refuse_multipart(len(parts))

    async def _receive_parts(self) -> list[bytes]:
        if self._closed:
            raise ConnectionError("the transport is closed")
        try:
            parts: list[bytes] = await self._socket.recv_multipart(copy=True)
        except asyncio.CancelledError:
            # Closing the socket cancels a pending receive; only a cancellation of the
            # receiving task itself is a real one.
            task = asyncio.current_task()
            if self._closed and (task is None or task.cancelling() == 0):
                raise ConnectionError("the transport is closed") from None
            raise
        except zmq.ZMQError as exc:
            raise ConnectionError(f"receiving failed: {exc}") from exc
        return parts

    async def _refuse_multipart(self, count: int) -> None:
        # Which frame would hold the request id is unknowable, so the answer has a null id,
        # as JSON-RPC says for a request that cannot be read. An error response is never
        # answered, so this cannot start a loop between the peers.
        logger.warning("refused a message of %d frames: a message is one frame", count)
        refusal = ErrorResponse(
            None, ErrorCode.INVALID_REQUEST, f"a message is one frame, not {count}"
        )
        with contextlib.suppress(ConnectionError):
            await self.send(encode_message(refusal))

    def close(self, flush: float = 0.0) -> None:
        """Close the socket. `flush` > 0 waits up to that many seconds for queued messages to
        go out (a final answer); the default drops them, since the host may be gone."""
        if self._closed:
            return
        self._closed = True
        if self._recheck is not None:
            self._recheck.cancel()
        self._socket.close(linger=max(0, round(flush * 1000)))
        self._context.term()
