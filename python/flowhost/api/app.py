"""The app factory: webhooks, health probes and the admin API, every error as problem+json.

Two layers, for speed where it counts:
- the root is a plain Starlette app holding the `/hooks/...` routes: a webhook request goes
  through routing and its handler only (no dependency injection, no model validation), since
  webhook throughput is measured in thousands of requests a second;
- everything else is a FastAPI app mounted under it: `/healthz`, `/readyz` and the JSON API
  under `/api`, whose pydantic models validate requests and make the OpenAPI document
  (`/api/openapi.json`, docs page at `/api/docs`). The admin token check (AdminAuth) and the
  body limit (BodyLimit) wrap it as ASGI middleware.

More routes join as modules: webhook routes in WEBHOOK_ROUTES' modules, API routers in
`flowhost.api.routes.ROUTERS`; both get the same errors, the API's get the same token check.
The dashboard's pages (`flowhost.ui`) sit at the root beside the webhooks, behind its session
cookie, which the API also takes (AdminAuth with `sessions`).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Security
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from flowhost import __version__, ui
from flowhost.api import await_webhooks, health, metrics_route, routes, webhook_triggers
from flowhost.api.auth import AdminAuth, bearer_scheme
from flowhost.api.errors import exception_handlers
from flowhost.api.limits import BodyLimit
from flowhost.project import Project
from flowhost.realtime.fanout import Fanout

logger = logging.getLogger(__name__)

# The await routes first: `/hooks/await/{token}` is theirs, not a trigger's.
WEBHOOK_ROUTES: list[BaseRoute] = [*await_webhooks.routes, *webhook_triggers.routes]

DESCRIPTION = """\
The admin API of a flowhost project: flows, runs, their events and state; starting and
controlling runs. Every route under `/api` needs the admin token
(`Authorization: Bearer <token>`); errors are RFC 9457 problem details
(`application/problem+json`). See docs/api.md.
"""


def create_app(project: Project, *, public_url: str | None = None) -> Starlette:
    """The HTTP app of a project. `public_url`: where it is reached from outside (webhook
    awaits' URLs start with it)."""
    api = create_api(project, public_url=public_url)
    app = Starlette(
        routes=[*WEBHOOK_ROUTES, *metrics_route.routes, *ui.ROUTES, Mount("", app=api)],
        exception_handlers=exception_handlers(),
    )
    app.state.project = project
    app.state.api = api
    app.state.public_url = public_url
    app.state.max_body_bytes = project.settings.max_body_bytes
    # Closed when the server stops (HttpServer.serve): open streams end first, so that the
    # server does not wait for them.
    app.state.before_stop = [api.state.realtime.close]
    return app


def create_api(project: Project, *, public_url: str | None = None) -> FastAPI:
    """The FastAPI side: health probes and the admin API."""
    settings = project.settings
    api = FastAPI(
        title="flowhost",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        exception_handlers=exception_handlers(),
    )
    api.include_router(health.router)
    for router in routes.ROUTERS:
        # Security(...) only documents the scheme (it never refuses): AdminAuth checks.
        api.include_router(router, dependencies=[Security(bearer_scheme)])
    # The last added runs first: the token is checked before any body is read.
    api.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    api.add_middleware(
        AdminAuth, token=settings.api_token, open_paths=routes.OPEN_API_PATHS, sessions=True
    )
    api.state.project = project
    api.state.public_url = public_url
    # The process's one listener for realtime streams; it starts with the first stream.
    api.state.realtime = Fanout(project.database)
    return api
