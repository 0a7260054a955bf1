"""The dashboard's session: a browser logs in once with the admin token and then carries a
cookie, which the pages and the API under `/api` accept like the bearer token.

- The cookie is not the token: it is `v1.<expiry>.<HMAC-SHA256 of the expiry, keyed by the
  token>`. It grants what the token grants until it expires (LIFETIME), cannot be turned back
  into the token, and every session ends when the token changes.
- HttpOnly (page scripts never read it) and SameSite=Strict (a browser sends it only with
  requests that a page of this site makes); Secure when the request came over https.
- A cookie-authenticated request that may change something (any method but GET, HEAD and
  OPTIONS) must also come from a page of this site: its `Origin` names this host (and
  `Sec-Fetch-Site`, when the browser sends it, says `same-origin`). A bearer-token request is
  not a browser's and needs neither.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

COOKIE = "flowhost_session"
LIFETIME = 7 * 86400
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_VERSION = "v1"

Headers = Sequence[tuple[bytes, bytes]]


def _signature(token: bytes, expires: int) -> str:
    message = f"flowhost-dashboard-session|{_VERSION}|{expires}".encode()
    return hmac.new(token, message, hashlib.sha256).hexdigest()


def new_session(token: str, *, now: float | None = None) -> str:
    """A cookie value valid for LIFETIME seconds from `now`."""
    expires = int(now if now is not None else time.time()) + LIFETIME
    return f"{_VERSION}.{expires}.{_signature(token.encode(), expires)}"


def session_is_valid(token: bytes, value: bytes, *, now: float | None = None) -> bool:
    """Whether a cookie value was made with `token` and has not expired (compared in constant
    time: how much of a forged value matched must not show)."""
    try:
        version, expires_text, signature = value.decode("ascii").split(".")
        expires = int(expires_text)
    except (UnicodeDecodeError, ValueError):
        return False
    if version != _VERSION:
        return False
    valid = hmac.compare_digest(signature.encode(), _signature(token, expires).encode())
    return valid and expires > (now if now is not None else time.time())


def session_cookie(headers: Headers) -> bytes | None:
    """The value of the session cookie in a request's `Cookie` headers, None without one."""
    prefix = COOKIE.encode() + b"="
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.split(b";"):
            part = part.strip()
            if part.startswith(prefix):
                return part[len(prefix) :].strip(b'"')
    return None


def set_cookie_header(value: str, *, secure: bool) -> str:
    """The `Set-Cookie` header that logs a browser in."""
    attributes = f"; Max-Age={LIFETIME}; Path=/; HttpOnly; SameSite=Strict"
    return f"{COOKIE}={value}{attributes}{'; Secure' if secure else ''}"


def clear_cookie_header() -> str:
    """The `Set-Cookie` header that logs a browser out."""
    return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"


def _header(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def same_origin(headers: Headers) -> bool:
    """Whether a browser says the request comes from a page of this site: `Origin` is this
    host (the `Host` the request was sent to) and `Sec-Fetch-Site`, if sent, `same-origin`.
    Browsers send `Origin` with every request other than GET and HEAD, so a request without
    one is not taken as coming from here."""
    site = _header(headers, b"sec-fetch-site")
    if site is not None and site != "same-origin":
        return False
    origin, host = _header(headers, b"origin"), _header(headers, b"host")
    if origin is None or host is None or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


def may_change(method: str, headers: Headers) -> bool:
    """Whether a cookie-authenticated request may do what its method says (see the module)."""
    return method in SAFE_METHODS or same_origin(headers)
