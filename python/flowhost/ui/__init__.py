"""The dashboard: server-rendered pages at `/` (Jinja2 templates, a stylesheet and one plain
script, served from this package), behind the admin token's session cookie. Pages read through
the functions the JSON API uses; their buttons and forms call the JSON API with the session."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from flowhost.ui import auth
from flowhost.ui.pages import flows, overview, run, runs, schedules, system, triggers

STATIC = Path(__file__).parent / "static"

ROUTES: list[BaseRoute] = [
    *auth.routes,
    *overview.routes,
    *flows.routes,
    *runs.routes,
    *run.routes,
    *triggers.routes,
    *schedules.routes,
    *system.routes,
    Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
]

__all__ = ["ROUTES"]
