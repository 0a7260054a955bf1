"""Every error an app answers, as problem+json with its status: HTTP errors of the framework
(404, 405 with `Allow`, 413...), request validation (400 for malformed JSON, 422 with the field
errors in an `errors` member), flowhost's own errors, and anything unexpected (500).

The same handlers serve the root app (webhooks) and the API; a module of routes raises
flowhost errors or `HTTPException` and never builds an error answer itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from flowhost.api.problems import problem
from flowhost.errors import (
    CloudEventError,
    ConnectorNotFoundError,
    DatabaseUnavailableError,
    FlowhostError,
    FlowNotFoundError,
    InvalidInputError,
    RunNotFoundError,
    RunStateError,
    StepNotFoundError,
    SubscriptionNotFoundError,
    TriggerConflictError,
    TriggerNotFoundError,
    TriggerRetiredError,
)

logger = logging.getLogger(__name__)

Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# The status of each flowhost error a route lets through (the first match wins).
STATUS_OF_ERROR: list[tuple[type[FlowhostError], int]] = [
    (RunNotFoundError, 404),
    (FlowNotFoundError, 404),
    (StepNotFoundError, 404),
    (RunStateError, 409),
    # The trigger errors, as flowhost.triggers.service.HTTP_STATUS maps them.
    (TriggerNotFoundError, 404),
    (ConnectorNotFoundError, 404),
    (SubscriptionNotFoundError, 404),
    (TriggerConflictError, 409),
    (TriggerRetiredError, 409),
    (InvalidInputError, 422),
    (DatabaseUnavailableError, 503),
]


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # The router names the methods of the first route of the path only; a path served by
        # several routes (GET and POST /api/runs) allows all of theirs.
        headers["Allow"] = ", ".join(allowed_methods(request)) or headers.get("Allow", "")
    return problem(exc.status_code, exc.detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """The methods some route of the app takes at the request's path (asked of each route,
    however the framework nests them)."""
    routes = getattr(request.app, "routes", [])
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def validation_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        reason = (malformed.get("ctx") or {}).get("error", "malformed")
        position = malformed["loc"][1] if len(malformed["loc"]) > 1 else 0
        return problem(400, f"the request body is not valid JSON: {reason} at position {position}")
    return problem(422, "the request is not valid", errors=[field_error(error) for error in errors])


def field_error(error: Mapping[str, Any]) -> dict[str, str]:
    """One validation error as `{location, pointer, message}`: where the value came from
    (body, query, path, header) and an RFC 6901 pointer to it there. The offending value is
    left out (it may be a secret)."""
    location, *path = error.get("loc") or ("body",)
    return {
        "location": str(location),
        "pointer": pointer(path),
        "message": str(error.get("msg", "invalid")),
    }


def pointer(path: Sequence[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


async def flowhost_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FlowhostError)
    if isinstance(exc, DatabaseUnavailableError):
        logger.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return problem(
            503, "the database cannot be reached; try again", headers={"Retry-After": "1"}
        )
    if isinstance(exc, CloudEventError):
        return problem(exc.status, exc.message, attribute=exc.attribute)
    for kind, status in STATUS_OF_ERROR:
        if isinstance(exc, kind):
            return problem(status, exc.message, errors=detail_errors(exc), **_members(exc))
    return await unexpected(request, exc)


def detail_errors(exc: FlowhostError) -> list[dict[str, str]] | None:
    """The field errors an error carries (`details["errors"]`: [{pointer, message}], as the
    trigger errors give them), in the API's shape; `details["location"]` says where the
    pointers point (default: the body)."""
    errors = exc.details.get("errors")
    if not isinstance(errors, list | tuple) or not errors:
        return None
    location = str(exc.details.get("location", "body"))
    return [
        {
            "location": location,
            "pointer": str(e.get("pointer", "")),
            "message": str(e.get("message")),
        }
        for e in errors
        if isinstance(e, Mapping)
    ]


def _members(exc: FlowhostError) -> dict[str, Any]:
    # A version conflict says which version is current, so a client can read it again.
    version = exc.details.get("version")
    return {"version": version} if isinstance(version, int) else {}


async def unexpected(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, "the request failed on the server")


def exception_handlers() -> dict[int | type[Exception], Handler]:
    return {
        HTTPException: http_error,
        RequestValidationError: validation_failed,
        FlowhostError: flowhost_error,
        Exception: unexpected,
    }
