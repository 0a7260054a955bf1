"""Who may see the dashboard: a browser with the session cookie (flowhost.api.session).

A browser logs in with the admin token, either by opening a page with `?token=...` (the URL
`flowhost dev` prints: the cookie is set and the browser is sent to the same page without the
token in its address) or through the login form. Without a valid session every page answers
401 with the login form. Tokens are compared in constant time.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from flowhost.api.errors import STATUS_OF_ERROR
from flowhost.api.session import (
    clear_cookie_header,
    new_session,
    same_origin,
    session_cookie,
    session_is_valid,
    set_cookie_header,
)
from flowhost.errors import FlowhostError
from flowhost.project import Project
from flowhost.ui.rendering import render, render_error, secure

Endpoint = Callable[[Request], Awaitable[Response]]
# A login form is small; a bigger body is not one.
MAX_LOGIN_BODY = 4096
DASHBOARD_OFF = (
    "the dashboard is off on this server: set the api_token setting (FLOWHOST_API_TOKEN) to use it"
)


def admin_token(request: Request) -> str | None:
    project: Project = request.app.state.project
    return project.settings.api_token


def _matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def logged_in(request: Request, token: str) -> bool:
    cookie = session_cookie(request.scope["headers"])
    return cookie is not None and session_is_valid(token.encode(), cookie)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this site only (never another site's URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _log_in(request: Request, token: str, target: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    secure_cookie = request.url.scheme == "https"
    response.headers["Set-Cookie"] = set_cookie_header(new_session(token), secure=secure_cookie)
    return secure(response)


def login_page(request: Request, *, message: str | None, target: str, status: int) -> Response:
    return render(
        request,
        "login.html",
        {"section": None, "title": "Log in", "message": message, "next": target},
        status=status,
    )


def page(handler: Endpoint) -> Endpoint:
    """A page behind the session: logs in with `?token=`, else shows the login form (401);
    flowhost errors become error pages with their status."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        token = admin_token(request)
        if token is None:
            return render_error(request, 403, DASHBOARD_OFF)
        given = request.query_params.get("token")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        here = request.url.path + ("?" + urlencode(rest) if rest else "")
        if given is not None:
            if _matches(given, token):
                return _log_in(request, token, here)
            return login_page(request, message="that token is not valid", target=here, status=401)
        if not logged_in(request, token):
            return login_page(request, message=None, target=here, status=401)
        try:
            return await handler(request)
        except FlowhostError as exc:
            status = next((s for kind, s in STATUS_OF_ERROR if isinstance(exc, kind)), 500)
            if status == 500:
                raise
            return render_error(request, status, exc.message)

    return endpoint


async def login_form(request: Request) -> Response:
    token = admin_token(request)
    if token is None:
        return render_error(request, 403, DASHBOARD_OFF)
    target = safe_next(request.query_params.get("next"))
    if logged_in(request, token):
        return secure(RedirectResponse(target, status_code=303))
    return login_page(request, message=None, target=target, status=200)


async def login(request: Request) -> Response:
    token = admin_token(request)
    if token is None:
        return render_error(request, 403, DASHBOARD_OFF)
    if not same_origin(request.scope["headers"]):
        return render_error(request, 403, "log in from this dashboard's own login page")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            return render_error(request, 413, "that is not a login form")
    fields = parse_qs(body.decode("utf-8", errors="replace"))
    given = (fields.get("token") or [""])[0].strip()
    target = safe_next((fields.get("next") or ["/"])[0])
    if given and _matches(given, token):
        return _log_in(request, token, target)
    return login_page(request, message="that token is not valid", target=target, status=401)


async def logout(request: Request) -> Response:
    if not same_origin(request.scope["headers"]):
        return render_error(request, 403, "log out from this dashboard's own pages")
    response = RedirectResponse("/login", status_code=303)
    response.headers["Set-Cookie"] = clear_cookie_header()
    return secure(response)


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
