"""The HTTP action (`ctx.http`): a request made by the host with httpx, its placeholders
expanded there (flowhost.actions.templates), and an `http` event recording it: method, URL,
headers, the size and the first BODY_SAMPLE_BYTES of each body, the status, how long it took,
the outcome. Secrets are redacted from the record, from errors, and from the response handed
to the step: the values `{secret:NAME}` expanded to, auth fields, and the values of the
headers in SENSITIVE_HEADERS.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from flowhost.actions.templates import REDACTED, Expander, Placeholders
from flowhost_worker.actions import AUTH_TYPES, HTTP_METHODS, MAX_HTTP_TIMEOUT, MAX_RESPONSE_BYTES
from flowhost_worker.errors import ActionError

BODY_SAMPLE_BYTES = 4096
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)
AUTH_FIELDS = {
    "basic": ("username", "password"),
    "bearer": ("token",),
    "api_key": ("name", "value"),
}

Record = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True, slots=True)
class HttpCall:
    """The `http.request` params, checked (a child may send anything)."""

    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, str]
    body: str | bytes | None
    auth: dict[str, str] | None
    timeout: float
    max_response_bytes: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> HttpCall:
        """Raises ValueError (answered as invalid params)."""
        method = params.get("method")
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            raise ValueError(f"method must be one of {', '.join(HTTP_METHODS)}")
        url = params.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError("url must be a non-empty string")
        timeout = params.get("timeout", 30.0)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or not 0 < timeout <= MAX_HTTP_TIMEOUT
        ):
            raise ValueError(f"timeout must be above 0 and at most {MAX_HTTP_TIMEOUT:g} seconds")
        limit = params.get("max_response_bytes", MAX_RESPONSE_BYTES)
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise ValueError("max_response_bytes must be an integer")
        if not 0 < limit <= MAX_RESPONSE_BYTES:
            raise ValueError(f"max_response_bytes must be from 1 to {MAX_RESPONSE_BYTES}")
        body = params.get("body")
        if body is not None and not isinstance(body, str | bytes):
            raise ValueError("body must be a string, bytes or null")
        auth = params.get("auth")
        if auth is not None:
            auth = _strings(auth, "auth")
            kind = auth.get("type")
            if kind not in AUTH_TYPES:
                raise ValueError(f"auth type must be one of {', '.join(AUTH_TYPES)}")
            missing = [name for name in AUTH_FIELDS[kind] if not auth.get(name)]
            if missing:
                raise ValueError(f"{kind} auth needs {', '.join(missing)}")
            if kind == "api_key" and auth.get("in", "header") not in ("header", "query"):
                raise ValueError('api_key auth goes "in" the header or the query')
        return cls(
            method=method.upper(),
            url=url,
            headers=_strings(params.get("headers") or {}, "headers"),
            query=_strings(params.get("query") or {}, "query"),
            body=body,
            auth=auth,
            timeout=float(timeout),
            max_response_bytes=limit,
        )


class HttpActions:
    """The HTTP actions of one host: one client (its connection pool) for all steps, and the
    host variables `{secret:NAME}` may read."""

    def __init__(
        self,
        *,
        secrets: frozenset[str],
        environ: Mapping[str, str],
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._secrets = secrets
        self._environ = environ
        # Redirects are not followed: a redirect is the step's business (and a followed one
        # would carry the auth header to wherever it points).
        self._client = client or httpx.AsyncClient(follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        params: Mapping[str, Any],
        values: Mapping[str, str],
        declared_env: frozenset[str],
        record: Record,
    ) -> dict[str, Any]:
        """Make the request `params` describe; `values`: the run's placeholders; `record`
        gets the event's data, also when the request fails. Raises ValueError (bad params, a
        placeholder that may not be read) before anything is sent, ActionError after."""
        call = HttpCall.from_params(params)
        expander = Expander(
            Placeholders(
                values={
                    **values,
                    "timestamp": datetime.now(UTC).isoformat(),
                    "uuid": str(uuid.uuid4()),
                },
                environ=self._environ,
                declared_env=declared_env,
                secrets=self._secrets,
            )
        )
        request = self._build(call, expander)
        data: dict[str, Any] = {
            "method": call.method,
            "url": expander.scrub(str(request.url)),
            "request": {
                "headers": _recorded_headers(request.headers, expander),
                **_sample(request.content, expander),
            },
            "response": None,
        }
        began = time.perf_counter()
        data.update(outcome="error", error="interrupted")  # until it ends one way or the other
        try:
            answer = await self._send(request, call, expander, data)
        except ActionError as exc:
            data["error"] = str(exc)
            raise
        else:
            data.update(outcome="ok", error=None)
        finally:
            data["duration_ms"] = round((time.perf_counter() - began) * 1000, 3)
            record(data)
        return answer

    def _build(self, call: HttpCall, expander: Expander) -> httpx.Request:
        headers = {
            name: expander.expand(value, f"header {name}") for name, value in call.headers.items()
        }
        query = {
            name: expander.expand(value, f"query {name}") for name, value in call.query.items()
        }
        if call.auth is not None:
            _authorize(call.auth, expander, headers, query)
        url = expander.expand(call.url, "url")
        body = (
            expander.expand(call.body, "body").encode("utf-8")
            if isinstance(call.body, str)
            else call.body
        )
        try:
            request = self._client.build_request(
                call.method, url, headers=headers, params=query or None, content=body
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, TypeError) as exc:
            raise ValueError(f"url: {expander.scrub(str(exc))}") from None
        if request.url.scheme not in ("http", "https"):
            raise ValueError(f"url must be http:// or https:// (got {request.url.scheme}://)")
        return request

    async def _send(
        self, request: httpx.Request, call: HttpCall, expander: Expander, data: dict[str, Any]
    ) -> dict[str, Any]:
        where = f"HTTP {call.method} {expander.scrub(str(request.url.copy_with(query=None)))}"
        try:
            async with asyncio.timeout(call.timeout):
                response = await self._client.send(request, stream=True)
                try:
                    content = await _read(response, call.max_response_bytes)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise ActionError(f"{where}: no complete answer within {call.timeout:g}s") from None
        except httpx.HTTPError as exc:
            detail = expander.scrub(str(exc) or type(exc).__name__)
            raise ActionError(f"{where}: {detail}") from None
        data["response"] = {
            "status": response.status_code,
            "headers": _recorded_headers(response.headers, expander),
            **({} if content is None else _sample(content, expander)),
        }
        if content is None:
            raise ActionError(
                f"{where}: the response body is larger than max_response_bytes "
                f"({call.max_response_bytes})"
            )
        text = expander.scrub(content.decode(response.encoding or "utf-8", errors="replace"))
        return {
            "status": response.status_code,
            "ok": response.is_success,
            "headers": {
                name: expander.scrub(value) for name, value in _joined(response.headers).items()
            },
            "body": text,
            "json": _json_of(text, response.headers.get("content-type", "")),
        }


async def _read(response: httpx.Response, limit: int) -> bytes | None:
    """The body, or None once it passed `limit` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _authorize(
    auth: dict[str, str], expander: Expander, headers: dict[str, str], query: dict[str, str]
) -> None:
    """Add the auth of `auth` to the headers or the query. Every auth value counts as a
    secret in the records, whether it came from a placeholder or not."""
    fields = {
        name: expander.expand(auth[name], f"auth {name}")
        for name in AUTH_FIELDS[auth["type"]]
        if name in auth
    }
    kind = auth["type"]
    if kind == "basic":
        expander.hide(fields["password"])
        token = base64.b64encode(f"{fields['username']}:{fields['password']}".encode()).decode()
        expander.hide(token)
        headers["Authorization"] = f"Basic {token}"
    elif kind == "bearer":
        expander.hide(fields["token"])
        headers["Authorization"] = f"Bearer {fields['token']}"
    else:
        expander.hide(fields["value"])
        target = query if auth.get("in", "header") == "query" else headers
        target[fields["name"]] = fields["value"]


def _joined(headers: httpx.Headers) -> dict[str, str]:
    """Header name (lower case) -> its values joined by ", "."""
    found: dict[str, list[str]] = {}
    for name, value in headers.multi_items():
        found.setdefault(name.lower(), []).append(value)
    return {name: ", ".join(values) for name, values in found.items()}


def _recorded_headers(headers: httpx.Headers, expander: Expander) -> dict[str, str]:
    return {
        name: REDACTED if name in SENSITIVE_HEADERS else expander.scrub(value)
        for name, value in _joined(headers).items()
    }


def _sample(content: bytes, expander: Expander) -> dict[str, Any]:
    """A body as recorded: its size and its start as text (secrets scrubbed)."""
    head = content[:BODY_SAMPLE_BYTES].decode("utf-8", errors="replace")
    return {
        "size": len(content),
        "body": expander.scrub(head),
        "truncated": len(content) > BODY_SAMPLE_BYTES,
    }


def _json_of(text: str, content_type: str) -> Any:
    if "json" not in content_type.lower():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _strings(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{what} must map non-empty strings to strings")
    return dict(value)
