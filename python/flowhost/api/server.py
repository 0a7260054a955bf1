"""Serving the app with uvicorn inside the host's own event loop, stopped with the host."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Generator

import uvicorn
from starlette.applications import Starlette

from flowhost.errors import ConfigurationError

logger = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The host owns SIGINT/SIGTERM: it stops the server through `should_exit`.
        yield


class HttpBindError(ConfigurationError):
    """The HTTP address cannot be bound."""

    @property
    def in_use(self) -> bool:
        return bool(self.details.get("errno") == errno.EADDRINUSE)


class HttpServer:
    """Binds at once (so that the address, port 0 included, is known before serving).

    `shared=True` (`flowhost serve --workers`): the port can be bound by other sockets of this
    user that say so too (SO_REUSEPORT), each listening: the kernel spreads new connections
    evenly over them. `listen=False` only holds the port (the supervisor's socket: a socket
    that does not listen gets no connections)."""

    def __init__(self, host: str, port: int, *, shared: bool = False, listen: bool = True) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise HttpBindError(
                f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}", errno=exc.errno
            ) from None
        if listen:
            self._socket.listen(2048)
        self._socket.setblocking(False)
        self.host = host
        self.port: int = self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        """The bound address as a URL (an unspecified address is named as localhost)."""
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def close(self) -> None:
        """Stop listening (when the server will not serve after all); idempotent."""
        self._socket.close()

    async def serve(self, app: Starlette, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; requests in progress finish first."""
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
        server = _EmbeddedServer(config)

        async def stop_when_asked() -> None:
            await stop.wait()
            await before_stop()
            server.should_exit = True

        async def before_stop() -> None:
            # What the app ends before the server waits for requests in progress: its
            # never-ending ones (event streams).
            for close in getattr(app.state, "before_stop", []):
                try:
                    await close()
                except Exception:
                    logger.exception("stopping the HTTP app failed")

        stopper = asyncio.create_task(stop_when_asked(), name="flowhost-http-stop")
        try:
            await server.serve(sockets=[self._socket])
        finally:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
            await before_stop()
            self._socket.close()


def bind_first_free(host: str, port: int, *, attempts: int = 100) -> HttpServer:
    """A server bound to `port` on `host`, or the next free port after it (`flowhost dev`)."""
    for candidate in range(port, min(port + attempts, 65536)):
        try:
            return HttpServer(host, candidate)
        except HttpBindError as exc:
            if not exc.in_use:
                raise
    raise HttpBindError(f"no free port on {host} from {port} to {port + attempts - 1}")
