"""What a request body may be: its size (413) and, where JSON is expected, its type (415).

The size is enforced while the body is read: a declared `Content-Length` over the limit is
refused before anything is read, and a body without one (chunked) is refused as soon as it
grows past the limit, so a client cannot make the server buffer more than the limit.
"""

from __future__ import annotations

from email.message import Message

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from flowhost.api.problems import problem

JSON_MEDIA_TYPE = "application/json"


class BodyTooLarge(HTTPException):
    """The request body is larger than the limit (answered 413).

    A FastAPI HTTPException: FastAPI lets those through when they are raised while it reads a
    body, where it turns any other exception into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def declared_too_large(headers: list[tuple[bytes, bytes]], limit: int) -> bool:
    for name, value in headers:
        if name == b"content-length":
            return value.isdigit() and int(value) > limit
    return False


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to be over `limit` bytes."""
    if declared_too_large(request.scope["headers"], limit):
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class BodyLimit:
    """ASGI middleware: bodies over `limit` bytes are refused with a 413 problem.

    A declared Content-Length over the limit is answered at once; otherwise the app's reads
    count the bytes and raise BodyTooLarge past the limit (answered by the app's handler of
    HTTP exceptions)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_too_large(scope["headers"], self.limit):
            response = problem(413, f"the request body is larger than {self.limit} bytes")
            await response(scope, receive, send)
            return
        size = 0

        async def counting_receive() -> ASGIMessage:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counting_receive, send)


def is_json(content_type: str | None) -> bool:
    """`application/json` or any `application/...+json`, with or without parameters."""
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


async def require_json(request: Request) -> None:
    """A dependency of routes that take a JSON body: a body of another type is refused (415).
    A request without a body passes (the route's model says whether one is needed).

    FastAPI decodes a body it is told is JSON before dependencies run (malformed JSON is a 400
    then); a body of another type it leaves as bytes, and this refuses it."""
    headers = request.headers
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if has_body and not is_json(headers.get("content-type")):
        raise HTTPException(
            415,
            f"the request body must be JSON (Content-Type: {JSON_MEDIA_TYPE})",
            headers={"Accept": JSON_MEDIA_TYPE},
        )
