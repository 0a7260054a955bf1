"""What the route modules share: the project, the refusals they document, the request's
validation errors raised by hand."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from flowhost.api.models import Problem
from flowhost.db.database import Connection
from flowhost.project import Project

# Seconds a request waits for a database connection before it is answered 503: with the
# database down, at once rather than after the pool's own 30 s.
CONNECTION_TIMEOUT = 5.0
# Who the API's run control records as its actor (`by` in flow.canceled and the like).
API_ACTOR = "api"


def project_of(request: Request) -> Project:
    project: Project = request.app.state.project
    return project


@contextlib.asynccontextmanager
async def connection(request: Request) -> AsyncIterator[Connection]:
    """A pooled connection of the project's database, in autocommit mode."""
    async with project_of(request).database.connection(timeout=CONNECTION_TIMEOUT) as conn:
        yield conn


@contextlib.asynccontextmanager
async def transaction(request: Request) -> AsyncIterator[Connection]:
    """A pooled connection inside one transaction."""
    async with project_of(request).database.transaction(timeout=CONNECTION_TIMEOUT) as conn:
        yield conn


def public_url_of(request: Request) -> str | None:
    url: str | None = request.app.state.public_url
    return url


def invalid(location: str, name: str, message: str) -> RequestValidationError:
    """A 422 about one value of the request, answered like the validation of the models."""
    return RequestValidationError(
        [{"type": "value_error", "loc": (location, name), "msg": message, "input": None}]
    )


def _problem(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {}},
    }


def documented(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry of a refusal answered as problem+json."""
    return _problem(description)


# OpenAPI `responses` of the refusals routes share (every route may also answer 401, 403, 500
# and 503; those are described once in docs/api.md).
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _problem("no such flow or run")}
INVALID: dict[int | str, dict[str, Any]] = {
    400: _problem("the body is not valid JSON"),
    413: _problem("the body is larger than the limit"),
    415: _problem("the body is not JSON"),
    422: _problem("a value of the request is not valid (see `errors`)"),
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _problem("the run's status (or the hosts serving its flow) does not allow it")
}
