"""Rendering the dashboard's pages: one Jinja2 environment over the package's templates, the
filters they share, and the headers every page gets.

Pages are HTML with no inline script or style: the Content-Security-Policy allows only this
site's own files, so that a value shown on a page (a step's log line, a run's input) can never
run as code, whatever it holds. Autoescaping is on for every template.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from flowhost import __version__
from flowhost.ui.timeline import RUN_EVENT_TYPES

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # A login link (`/?token=...`) must not leak through a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def when(value: datetime | str | None) -> str:
    """A time as the pages show it: UTC, to the second."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(value: datetime | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.isoformat()


def milliseconds(value: float | None) -> str:
    """A duration in ms, as a person reads it."""
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    seconds = value / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    return milliseconds((end - start).total_seconds() * 1000)


def pretty(value: Any) -> str:
    """A JSON value, indented (the templates put it in <pre>, escaped)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def compact(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short(value: Any) -> str:
    """A run id as lists show it (the first 8 characters; the CLI takes a prefix too)."""
    return str(value)[:8]


environment = Environment(
    loader=PackageLoader("flowhost.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(
    when=when,
    iso=iso,
    ms=milliseconds,
    between=between,
    pretty=pretty,
    compact=compact,
    short=short,
)
# Every event type of a run (the pages' EventSource listens to each by name).
environment.globals.update(version=__version__, event_types=(*RUN_EVENT_TYPES, "end"))

NAVIGATION = (
    ("overview", "/", "Overview"),
    ("flows", "/flows", "Flows"),
    ("runs", "/runs", "Runs"),
    ("triggers", "/triggers", "Triggers"),
    ("schedules", "/schedules", "Schedules"),
    ("queues", "/queues", "Queues"),
    ("workers", "/workers", "Workers"),
)


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> Response:
    """A page: `template` with `context`, the navigation and the request."""
    page = environment.get_template(template)
    html = page.render(request=request, navigation=NAVIGATION, **context)
    return secure(HTMLResponse(html, status_code=status))


def render_error(request: Request, status: int, message: str) -> Response:
    return render(
        request,
        "error.html",
        {"section": None, "title": f"{status}", "status": status, "message": message},
        status=status,
    )
