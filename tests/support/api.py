"""The HTTP app of a project, called in-process through httpx (ASGI transport), with or
without the admin token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from flowhost.api.app import create_app
from flowhost.project import Project, open_project
from flowhost.settings import load_settings

TOKEN = "test-admin-token-0123456789"
BASE_URL = "http://flowhost.test"


@contextlib.asynccontextmanager
async def api_client(
    project: Project, *, token: str | None = TOKEN, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the project's app; `token` goes in every request's Authorization header."""
    app = create_app(project, public_url="https://flows.example")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client


@contextlib.asynccontextmanager
async def serving_api(
    project_dir: Path,
    database_url: str,
    *,
    token: str | None = TOKEN,
    raise_app_exceptions: bool = True,
    **settings: Any,
) -> AsyncIterator[tuple[Project, httpx.AsyncClient]]:
    """The project (its admin token TOKEN unless `api_token` says otherwise) and a client of
    its app that sends `token`."""
    settings.setdefault("api_token", TOKEN)
    loaded = load_settings(project_dir, environ={"DATABASE_URL": database_url}, **settings)
    async with (
        open_project(loaded) as project,
        api_client(project, token=token, raise_app_exceptions=raise_app_exceptions) as client,
    ):
        yield project, client


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank" and body["title"]
    return body
