"""The admin API's bearer token: checked on every request under `/api`, before its body is read.

An ASGI middleware rather than a FastAPI dependency: it answers before FastAPI reads and
decodes a body (a client without the token cannot make the server read, or learn anything
from, a request body) and before routing (unknown paths under `/api` are 401 too). The
OpenAPI document and its docs page stay open: they describe routes, and hold no data.

With `sessions`, the dashboard's session cookie (flowhost.api.session) is taken too, for the
requests its pages make (an EventSource cannot send headers); a cookie-authenticated request
that may change something must come from a page of this site (CSRF).
"""

from __future__ import annotations

import hmac

from fastapi.security import HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from flowhost.api.problems import ProblemResponse, problem
from flowhost.api.session import may_change, session_cookie, session_is_valid

API_PREFIX = "/api"
# Open under /api: the OpenAPI document and the docs page that reads it.
OPEN_PATHS = frozenset({"/api/openapi.json", "/api/docs", "/api/docs/oauth2-redirect"})
REALM = 'Bearer realm="flowhost"'

# Only documents the scheme in OpenAPI (the "Authorize" button of the docs page); the check
# is AdminAuth's.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="adminToken",
    description="The admin token: setting `api_token` (`FLOWHOST_API_TOKEN`); `flowhost dev` "
    "prints the one it uses.",
)


Headers = list[tuple[bytes, bytes]]


def bearer_token(headers: Headers) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header, None without one."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() != b"bearer" or not token.strip():
                return None
            return token.strip()
    return None


class AdminAuth:
    """Refuses requests under `/api` (except OPEN_PATHS) without the admin token: 401 with
    `WWW-Authenticate: Bearer`; 403 for every request when no token is set (the admin API is
    off)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        open_paths: frozenset[str] = frozenset(),
        *,
        sessions: bool = False,
    ) -> None:
        """`sessions`: also take the dashboard's session cookie (when there is no bearer
        token)."""
        self.app = app
        self._token = None if token is None else token.encode()
        self._open = OPEN_PATHS | open_paths
        self._sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope["method"], scope["headers"])
        if refusal is None:
            await self.app(scope, receive, send)
            return
        await refusal(scope, receive, send)

    def _guarded(self, path: str) -> bool:
        return (path == API_PREFIX or path.startswith(API_PREFIX + "/")) and (
            path not in self._open
        )

    def _refusal(self, method: str, headers: Headers) -> ProblemResponse | None:
        if self._token is None:
            return problem(
                403,
                "the admin API is off on this server: set the api_token setting "
                "(FLOWHOST_API_TOKEN) to use it",
            )
        given = bearer_token(headers)
        if given is None and self._sessions:
            cookie = session_cookie(headers)
            if cookie is not None:
                return self._session_refusal(self._token, cookie, method, headers)
        if given is None:
            return problem(
                401,
                "this route needs the admin token: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": REALM},
            )
        # Constant time: how much of a guess matched must not show in the answer's timing.
        if not hmac.compare_digest(given, self._token):
            return problem(
                401,
                "the admin token is not valid",
                headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
            )
        return None

    @staticmethod
    def _session_refusal(
        token: bytes, cookie: bytes, method: str, headers: Headers
    ) -> ProblemResponse | None:
        if not session_is_valid(token, cookie):
            return problem(
                401,
                "the dashboard session is over (expired, or the admin token changed): log in again",
                headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
            )
        if not may_change(method, headers):
            return problem(
                403,
                "refused: a request with the dashboard's session that changes something must "
                "come from a page of this dashboard (its Origin is another site, or missing)",
            )
        return None
