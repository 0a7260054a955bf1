"""`/metrics`: the process's Prometheus metrics (flowhost.metrics, docs/metrics.md).

Outside `/api` and its admin token: a Prometheus server should not hold the admin token (it
can cancel and start runs). With the `metrics_token` setting, scrapes need it as a bearer
token (Prometheus' `authorization` scrape option); without it, `/metrics` is open: it holds
counts and durations by flow and step names, never inputs, results or errors, and flowhost
binds to 127.0.0.1 unless told otherwise. Serving on a public address: set the token.
"""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowhost import metrics
from flowhost.api.auth import bearer_token
from flowhost.api.problems import problem
from flowhost.project import Project

REALM = 'Bearer realm="flowhost-metrics"'


async def scrape(request: Request) -> Response:
    project: Project = request.app.state.project
    token = project.settings.metrics_token
    if token is not None:
        given = bearer_token(request.scope["headers"])
        if given is None or not hmac.compare_digest(given, token.encode()):
            return problem(
                401,
                "/metrics needs the metrics token: Authorization: Bearer <metrics_token>",
                headers={"WWW-Authenticate": REALM},
            )
    await metrics.refresh(project.database)
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", scrape, methods=["GET"])]
