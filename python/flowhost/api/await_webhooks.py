"""`/hooks/await/{token}`: the resolve URLs of webhook awaits, for every HTTP method.

The method, the body and the await's state are checked in flowhost.engine.await_resolution,
in one transaction; a refusal changes nothing and is answered with problem+json.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowhost.api.problems import problem
from flowhost.engine.await_resolution import (
    AwaitSchemaError,
    WebhookOutcome,
    WebhookResult,
    resolve_webhook,
)
from flowhost.project import Project

# Bodies above this are refused (413) before anything is read further.
MAX_BODY_BYTES = 1024 * 1024
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# What flowhost's tokens look like; anything else is not one (and needs no database look-up).
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def resolve_await(request: Request) -> Response:
    token = request.path_params["token"]
    if not TOKEN.match(token):
        return problem(404, "no await has this URL")
    try:
        body = await read_body(request)
    except BodyTooLarge:
        return problem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    project: Project = request.app.state.project
    try:
        async with project.database.transaction() as conn:
            outcome = await resolve_webhook(
                conn,
                token,
                request.method,
                body,
                dict(request.query_params),
                flows=project.catalog.flows,
            )
    except AwaitSchemaError as exc:
        return problem(500, exc.message)
    return answer(outcome)


def answer(outcome: WebhookOutcome) -> Response:
    run_id = None if outcome.run_id is None else str(outcome.run_id)
    if outcome.result is WebhookResult.RESOLVED:
        return JSONResponse(
            {
                "status": "resolved",
                "run_id": run_id,
                "step": outcome.step,
                "position": outcome.position,
            },
            status_code=202,
        )
    return problem(
        outcome.result.value,
        outcome.detail,
        headers={"Allow": outcome.allow} if outcome.allow else None,
        errors=list(outcome.errors) or None,
        run_id=run_id,
        step=outcome.step,
        position=outcome.position,
    )


routes = [Route("/hooks/await/{token}", resolve_await, methods=METHODS)]
