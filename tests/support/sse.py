"""The project's HTTP app on a real uvicorn inside the test process, and a Server-Sent Events
reader over real sockets (httpx's in-process transport buffers whole responses)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette

from flowhost.api.app import create_app
from flowhost.api.server import HttpServer
from flowhost.project import Project


@contextlib.asynccontextmanager
async def serving_http(
    project: Project, *, heartbeat: float | None = None
) -> AsyncIterator[tuple[str, Starlette]]:
    """The app served on 127.0.0.1 (a free port) until the block ends: its URL and the app."""
    app = create_app(project)
    if heartbeat is not None:
        app.state.api.state.stream_heartbeat = heartbeat
    server = HttpServer("127.0.0.1", 0)
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(app, stop))
    try:
        yield server.url, app
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@dataclasses.dataclass
class Frame:
    """One SSE message: its fields, or a comment."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    comment: str | None = None

    @property
    def json(self) -> Any:
        assert self.data is not None
        return json.loads(self.data)


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """The messages of an event stream, comments included, as they arrive."""
    current = Frame()
    fields = False
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield current
            current, fields = Frame(), False
            continue
        if line.startswith(":"):
            yield Frame(comment=line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name in ("id", "event"):
            setattr(current, name, value)
            fields = True
        elif name == "data":
            current.data = value if current.data is None else current.data + "\n" + value
            fields = True
