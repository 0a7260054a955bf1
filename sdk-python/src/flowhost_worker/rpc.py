"""One side of a protocol connection: calls out, answers calls in, over any frame transport.

The host and the child runtime both use `Peer`; the transport (a ZeroMQ socket in production,
an in-memory pair in tests) only moves whole frames. Every frame a peer receives is decoded and
checked (`flowhost_worker.protocol`): a broken request is answered with its error code, a
broken notification or response is logged and dropped, and nothing a peer sends can stop the
other side's loop.

Frames are dispatched in the order they arrive. A notification whose handler is a plain function
is handled as its frame is dispatched, before the next frame is read: what such a handler does
comes before everything the other side sent after it, a response included. The host relies on
this for `emit`, which a child sends before its answer and must be seen first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from flowhost_worker.protocol import (
    DEFAULT_MAX_FRAME,
    ErrorCode,
    ErrorResponse,
    Message,
    Notification,
    ProtocolError,
    Request,
    Result,
    decode_frame,
    encode_message,
)

logger = logging.getLogger(__name__)

RequestHandler = Callable[[dict[str, Any]], Awaitable[Any]]
NotificationHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
# Told of each frame the peer could not read (it is answered, or dropped, as the contract says).
BrokenFrameHandler = Callable[[ProtocolError], None]


class Transport(Protocol):
    """Moves whole frames. `receive` raises `ConnectionError` once the other side is gone."""

    async def send(self, frame: bytes) -> None: ...

    async def receive(self) -> bytes: ...


class RemoteError(ProtocolError):
    """The other side answered a call with an error."""


class Peer:
    """Calls the other side and serves its calls. Run `serve()` for as long as the connection
    lives; `call`, `notify` and the handlers work while it runs."""

    def __init__(
        self,
        transport: Transport,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        on_broken_frame: BrokenFrameHandler | None = None,
    ) -> None:
        self._transport = transport
        self._on_broken_frame = on_broken_frame
        self.max_frame = max_frame
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._on_response: dict[int, Callable[[], None]] = {}
        self._requests: dict[str, RequestHandler] = {}
        self._notifications: dict[str, NotificationHandler] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed: BaseException | None = None

    def on_request(self, method: str, handler: RequestHandler) -> None:
        self._requests[method] = handler

    def on_notification(self, method: str, handler: NotificationHandler) -> None:
        self._notifications[method] = handler

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        on_response: Callable[[], None] | None = None,
    ) -> Any:
        """Send a request and wait for its result; `RemoteError` if answered with an error.

        `on_response` is called as the response's frame is dispatched, before any frame that
        came after it (the caller resumes later): what it marks is exactly "sent before the
        answer"."""
        if self._closed is not None:
            raise ConnectionError("the connection is closed") from self._closed
        id_ = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[id_] = future
        if on_response is not None:
            self._on_response[id_] = on_response
        try:
            await self._send(Request(id_, method, params or {}))
            return await future
        finally:
            self._pending.pop(id_, None)
            self._on_response.pop(id_, None)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self._send(Notification(method, params or {}))

    async def send_frame(self, frame: bytes) -> None:
        """Send a message already encoded (`encode_message`): a notification, say, whose size
        the sender checked against `max_frame`."""
        if self._closed is not None:
            raise ConnectionError("the connection is closed") from self._closed
        await self._transport.send(frame)

    async def serve(self) -> None:
        """Receive and dispatch frames until the transport closes; then fail pending calls."""
        try:
            while True:
                frame = await self._transport.receive()
                self._dispatch(frame)
        except ConnectionError as exc:
            self._close(exc)
        except BaseException:
            self._close(ConnectionError("the peer stopped serving"))
            raise
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every call received so far has been handled and answered.

        A process that decides to exit from inside a handler calls this from elsewhere before
        closing the transport, so that its last answer is not lost."""
        current = asyncio.current_task()
        while busy := [task for task in self._tasks if task is not current]:
            await asyncio.wait(busy)

    def _close(self, reason: BaseException) -> None:
        self._closed = reason
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the connection closed during the call"))

    def _dispatch(self, frame: bytes) -> None:
        try:
            message = decode_frame(frame, max_frame=self.max_frame)
        except ProtocolError as exc:
            self._answer_broken_frame(frame, exc)
            return
        if isinstance(message, Notification):
            self._handle_notification(message)
        elif isinstance(message, Request):
            self._spawn(self._handle_request(message))
        else:
            self._settle(message)

    def _answer_broken_frame(self, frame: bytes, exc: ProtocolError) -> None:
        # Answered as JSON-RPC says, with the id if it could be read, else null. An error
        # response is never answered in turn (see _settle), so two peers cannot ping-pong.
        logger.warning("refused a frame of %d bytes: %s", len(frame), exc.message)
        if self._on_broken_frame is not None:
            try:
                self._on_broken_frame(exc)
            except Exception:
                logger.exception("the broken-frame handler failed")
        self._spawn(self._reply(exc.to_response()))

    def _settle(self, message: Result | ErrorResponse) -> None:
        future = self._pending.get(message.id) if message.id is not None else None
        if future is None or future.done():
            logger.warning("dropped a response to no outstanding call (id %s)", message.id)
            return
        on_response = self._on_response.pop(message.id, None) if message.id is not None else None
        if on_response is not None:
            try:
                on_response()
            except Exception:
                logger.exception("the response callback of call %s failed", message.id)
        if isinstance(message, Result):
            future.set_result(message.result)
        else:
            future.set_exception(
                RemoteError(message.code, message.message, id=message.id, data=message.data)
            )

    def _handle_notification(self, message: Notification) -> None:
        handler = self._notifications.get(message.method)
        if handler is None:
            logger.warning("dropped an unknown notification %r", message.method)
            return
        try:
            outcome = handler(message.params)
        except Exception:
            logger.exception("handling the notification %r failed", message.method)
            return
        if outcome is not None:
            self._spawn(self._finish_notification(message.method, outcome))

    @staticmethod
    async def _finish_notification(method: str, outcome: Awaitable[None]) -> None:
        try:
            await outcome
        except Exception:
            logger.exception("handling the notification %r failed", method)

    async def _handle_request(self, message: Request) -> None:
        response: Message
        request_handler = self._requests.get(message.method)
        try:
            if request_handler is None:
                raise ProtocolError(
                    ErrorCode.METHOD_NOT_FOUND, f"unknown method {message.method!r}"
                )
            response = Result(message.id, await request_handler(message.params))
        except ProtocolError as exc:
            response = ErrorResponse(message.id, exc.code, exc.message, exc.data)
        except Exception as exc:
            logger.exception("handling %r failed", message.method)
            response = ErrorResponse(
                message.id, ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"
            )
        await self._reply(response)

    async def _send(self, message: Message) -> None:
        await self._transport.send(encode_message(message))

    async def _reply(self, response: Message) -> None:
        # The asker may be gone by now; there is nobody left to tell.
        with contextlib.suppress(ConnectionError):
            await self._send(response)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a protocol task failed", exc_info=task.exception())


class MemoryTransport:
    """One end of an in-memory connection (`MemoryTransport.pair()`), for tests and tools."""

    def __init__(self, inbox: asyncio.Queue[bytes | None], outbox: asyncio.Queue[bytes | None]):
        self._inbox = inbox
        self._outbox = outbox

    @classmethod
    def pair(cls) -> tuple[MemoryTransport, MemoryTransport]:
        left: asyncio.Queue[bytes | None] = asyncio.Queue()
        right: asyncio.Queue[bytes | None] = asyncio.Queue()
        return cls(left, right), cls(right, left)

    async def send(self, frame: bytes) -> None:
        await self._outbox.put(bytes(frame))

    async def receive(self) -> bytes:
        frame = await self._inbox.get()
        if frame is None:
            self._inbox.put_nowait(None)  # stays closed for later receivers
            raise ConnectionError("the other end closed")
        return frame

    def close(self) -> None:
        """Both ends see the connection closed."""
        self._outbox.put_nowait(None)
        self._inbox.put_nowait(None)
