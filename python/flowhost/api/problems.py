"""Errors as RFC 9457 problem details (`application/problem+json`): one way to build them."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    type: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    """A problem+json response. `title` defaults to the status's phrase (as RFC 9457 asks of
    `about:blank` problems); extension members go beside the standard ones."""
    body: dict[str, Any] = {
        "type": type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    body.update({key: value for key, value in extensions.items() if value is not None})
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))
