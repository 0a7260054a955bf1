"""`/hooks/await/{token}`: the resolve URLs of webhook awaits, for every HTTP method.

The method, the body and the await's state are checked in flowhost.engine.await_resolution,
in one transaction; a refusal changes nothing and is answered with problem+json.
"""

from __future__ import annotations

import re
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowhost import metrics
from flowhost.api.limits import BodyTooLarge, read_body
from flowhost.api.problems import problem
from flowhost.engine.await_resolution import (
    AwaitSchemaError,
    WebhookOutcome,
    WebhookResult,
    resolve_webhook,
)
from flowhost.project import Project

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# What flowhost's tokens look like; anything else is not one (and needs no database look-up).
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


async def resolve_await(request: Request) -> Response:
    began = time.perf_counter()
    response = await _resolve_await(request)
    metrics.observe_webhook_ack("await", response.status_code, began)
    return response


async def _resolve_await(request: Request) -> Response:
    token = request.path_params["token"]
    if not TOKEN.match(token):
        return problem(404, "no await has this URL")
    limit: int = request.app.state.max_body_bytes
    try:
        body = await read_body(request, limit)
    except BodyTooLarge as exc:
        return problem(413, exc.detail)
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
                on_emit=project.event_triggers,
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
