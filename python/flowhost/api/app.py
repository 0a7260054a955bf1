"""The app factory: routes, and every error answered as problem+json.

Small on purpose: the JSON API, realtime streams and the dashboard grow from here, each in a
module of its own that contributes routes.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from flowhost.api import await_webhooks
from flowhost.api.problems import problem
from flowhost.errors import DatabaseUnavailableError
from flowhost.project import Project

logger = logging.getLogger(__name__)


def create_app(project: Project, *, public_url: str | None = None) -> Starlette:
    """The HTTP app of a project. `public_url`: where it is reached from outside."""
    app = Starlette(
        routes=[*await_webhooks.routes],
        exception_handlers={
            HTTPException: _http_error,
            DatabaseUnavailableError: _database_unavailable,
            Exception: _unexpected,
        },
    )
    app.state.project = project
    app.state.public_url = public_url
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, exc.detail, headers=exc.headers)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("%s %s: %s", request.method, request.url.path, exc)
    return problem(503, "the database cannot be reached; try again", headers={"Retry-After": "1"})


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, "the request failed on the server")
