"""The admin API's routes, a module per resource. A module adds an `APIRouter` whose paths
start with `/api` to ROUTERS; the app gives every one the admin token check, the body limit and
problem+json errors."""

from __future__ import annotations

from fastapi import APIRouter

from flowhost.api.routes import connectors, events, flows, runs, schedules, streams, triggers

ROUTERS: list[APIRouter] = [
    flows.router,
    runs.router,
    streams.router,
    triggers.router,
    schedules.router,
    events.router,
    connectors.router,
]
# Paths under /api that a route module authenticates itself (not with the admin token): none
# yet. A route with its own auth (an ingest endpoint with its own keys) adds its path here.
OPEN_API_PATHS: frozenset[str] = frozenset()
