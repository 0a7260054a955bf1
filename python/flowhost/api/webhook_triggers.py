"""`/hooks/{trigger}`: webhook triggers, the hot path (plain Starlette, no FastAPI).

A request goes through, in this order (each refusal answered at once, as problem+json):

1. the trigger, read from an in-memory cache of at most CACHE_TTL seconds (unknown names are
   cached too, so a flood of made-up URLs costs no queries): 404 unknown or not a webhook,
   410 retired, 500 a config this host cannot use (a `secret_env` not set here);
2. the method (405 with `Allow`), the source address' rate limit (429, before any other work),
   the content type (415 with `Accept`), the body size (413, while it is read);
3. the trigger's `auth` (WebhookAuth, parsed once per trigger version): 401/403 with
   `WWW-Authenticate` when the scheme has one;
4. the trigger's and the tenant's rate limits (429 with `Retry-After`), counted only for
   authenticated requests so that forged calls cannot spend a sender's quota;
5. the fire: `fire_trigger` with the delivery id as `delivery_key`, through a group commit
   (`GroupCommitter`): the fires of requests that arrive while a transaction commits share
   the next one. Each request is answered only after the transaction holding its runs has
   committed: 202 and the fire (runs started); a repeated delivery gets the first delivery's
   status and body and starts nothing.

Rate limits live in this process (the Rust GCRA limiter): with several hosts serving webhooks,
each admits the limit; see docs/webhooks.md.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from flowhost import metrics
from flowhost._core import RateLimiter
from flowhost.api.limits import BodyTooLarge, is_json, read_body
from flowhost.api.problems import problem
from flowhost.db.json_codec import dumps
from flowhost.db.queries import QUERIES
from flowhost.engine.batching import GroupCommitter
from flowhost.engine.json_pointer import resolve
from flowhost.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidInputError,
    TriggerInputError,
    TriggerNotFoundError,
    TriggerRetiredError,
    WebhookVerificationError,
)
from flowhost.project import Project
from flowhost.triggers.batch_firing import FireRequest, fire_batch
from flowhost.triggers.firing import Fired, fire_trigger
from flowhost.triggers.webhook_config import HTTP_METHODS, WebhookConfig, WebhookConfigError
from flowhost.webhooks import WebhookAuth, WebhookRequest, delivery_id

logger = logging.getLogger(__name__)

# Seconds a trigger's row is used before it is read again: a change (auth, limits, retire)
# takes effect on every host within this.
CACHE_TTL = 1.0
CACHE_SIZE = 10_000
# Fires committed together at most.
MAX_BATCH = 256
# Seconds a busy host waits before its next flush, to gather one batch (none when idle).
LINGER = 0.001
CONNECTION_TIMEOUT = 5.0
SOURCE = "webhook"
URL_SCHEMES = ("twilio", "api-key")
# Headers a run never sees: credentials and signatures.
SECRET_HEADER = re.compile(
    r"authorization|cookie|signature|hmac|secret|token|password|api-?key", re.IGNORECASE
)


@dataclasses.dataclass(frozen=True, slots=True)
class HookEntry:
    """A webhook trigger as this host serves it, for CACHE_TTL seconds."""

    name: str
    version: int
    status: str
    config: WebhookConfig | None
    auth: WebhookAuth | None
    # Why this host cannot serve it (logged once per version; the sender gets a 500).
    problem: str | None
    loaded_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    trigger: str
    payload: dict[str, Any]
    key: str | None
    details: dict[str, Any]


class WebhookTriggers:
    """One app's webhook triggers: the cache, the rate limiters and the group commit."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._entries: collections.OrderedDict[str, HookEntry | float] = collections.OrderedDict()
        self._loading: dict[str, asyncio.Future[HookEntry | None]] = {}
        self._auth: dict[tuple[str, int], WebhookAuth | str] = {}
        self._limiters: dict[tuple[str, str, Any], RateLimiter] = {}
        self._committer: GroupCommitter[Delivery, Fired | Exception] = GroupCommitter(
            self._flush, max_batch=MAX_BATCH, linger=LINGER
        )

    # -- the trigger, cached ------------------------------------------------------------

    async def entry(self, name: str) -> HookEntry | None:
        now = time.monotonic()
        found = self._entries.get(name)
        if found is not None:
            loaded_at = found if isinstance(found, float) else found.loaded_at
            if now - loaded_at < CACHE_TTL:
                return None if isinstance(found, float) else found
        pending = self._loading.get(name)
        if pending is not None:  # another request is reading it: share its answer
            return await asyncio.shield(pending)
        future: asyncio.Future[HookEntry | None] = asyncio.get_running_loop().create_future()
        self._loading[name] = future
        try:
            entry = await self._load(name, now)
            future.set_result(entry)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._loading[name]
        self._entries[name] = now if entry is None else entry
        self._entries.move_to_end(name)
        while len(self._entries) > CACHE_SIZE:
            self._entries.popitem(last=False)
        return entry

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)

    async def _load(self, name: str, now: float) -> HookEntry | None:
        async with self._project.database.connection(timeout=CONNECTION_TIMEOUT) as conn:
            row = await (await conn.execute(QUERIES["webhook_trigger"], {"name": name})).fetchone()
        if row is None or row["type"] != "webhook":
            return None
        config: WebhookConfig | None = None
        auth: WebhookAuth | None = None
        problem_text: str | None = None
        try:
            config = WebhookConfig.parse(row["config"])
            auth = self._auth_of(name, row["version"], config)
        except (WebhookConfigError, ConfigurationError) as exc:
            problem_text = str(exc)
            if (name, row["version"]) not in self._auth:
                self._auth[(name, row["version"])] = problem_text
                logger.error("webhook trigger %r cannot be served: %s", name, problem_text)
        return HookEntry(name, row["version"], row["status"], config, auth, problem_text, now)

    def _auth_of(self, name: str, version: int, config: WebhookConfig) -> WebhookAuth:
        """The parsed auth of this version of the trigger (secrets read from the environment
        once per version)."""
        cached = self._auth.get((name, version))
        if isinstance(cached, WebhookAuth):
            return cached
        auth = WebhookAuth.from_config(config.auth)
        self._auth = {k: v for k, v in self._auth.items() if k[0] != name}
        self._auth[(name, version)] = auth
        return auth

    def limiter(self, name: str, kind: str, config: WebhookConfig) -> RateLimiter | None:
        limit = config.rate_limits.get(kind)
        if limit is None:
            return None
        key = (name, kind, limit)
        found = self._limiters.get(key)
        if found is None:
            found = self._limiters[key] = limit.limiter()
        return found

    # -- firing, committed in groups ----------------------------------------------------

    async def fire(self, delivery: Delivery) -> Fired | Exception:
        return await self._committer.submit(delivery)

    async def _flush(self, deliveries: Sequence[Delivery]) -> list[Fired | Exception]:
        """The fires in one transaction, a `fire_batch` per trigger. If that fails for a reason
        other than the database being away, each is fired again alone (`fire_trigger`, a
        transaction each), so that one fire Postgres refuses fails alone."""
        project = self._project

        def served() -> Any:
            return project.catalog.flows

        by_trigger: dict[str, list[int]] = {}
        for i, delivery in enumerate(deliveries):
            by_trigger.setdefault(delivery.trigger, []).append(i)
        outcomes: list[Fired | Exception] = [None] * len(deliveries)  # type: ignore[list-item]
        try:
            # Pipeline mode: BEGIN goes out with the first statement (one round trip less).
            async with project.database.transaction(
                pipeline=True, timeout=CONNECTION_TIMEOUT
            ) as conn:
                for name, positions in by_trigger.items():
                    requests = [
                        FireRequest(deliveries[i].payload, deliveries[i].key, deliveries[i].details)
                        for i in positions
                    ]
                    fired = await fire_batch(conn, name, requests, source=SOURCE, served=served)
                    for i, outcome in zip(positions, fired, strict=True):
                        outcomes[i] = outcome
            return outcomes
        except DatabaseUnavailableError:
            raise
        except Exception as exc:
            if len(deliveries) > 1:
                logger.warning(
                    "firing %d webhook deliveries together failed (%s); firing them one by one",
                    len(deliveries),
                    exc,
                )
        return [await self._fire_alone(d, served) for d in deliveries]

    async def _fire_alone(self, delivery: Delivery, served: Any) -> Fired | Exception:
        try:
            async with self._project.database.transaction(timeout=CONNECTION_TIMEOUT) as conn:
                return await fire_trigger(
                    conn,
                    delivery.trigger,
                    delivery.payload,
                    source=SOURCE,
                    delivery_key=delivery.key,
                    served=served,
                    details=delivery.details,
                )
        except DatabaseUnavailableError:
            raise
        except Exception as exc:
            return exc


def _hooks_of(request: Request) -> WebhookTriggers:
    state = request.app.state
    hooks: WebhookTriggers | None = getattr(state, "webhook_triggers", None)
    if hooks is None:
        hooks = state.webhook_triggers = WebhookTriggers(state.project)
    return hooks


def too_many(decision: Any, what: str) -> Response:
    retry = decision.retry_after
    seconds = 1 if not math.isfinite(retry) else max(1, math.ceil(retry))
    return problem(429, f"the {what} rate limit is reached", headers={"Retry-After": str(seconds)})


async def receive_webhook(request: Request) -> Response:
    name: str = request.path_params["trigger"]
    hooks = _hooks_of(request)
    entry = await hooks.entry(name)
    if entry is None:
        return problem(404, "no webhook trigger has this URL")
    if entry.status == "retired":
        return problem(410, "this webhook trigger is retired")
    config, auth = entry.config, entry.auth
    if config is None or auth is None:
        return problem(500, "this webhook trigger cannot be served (see the host's log)")
    client = request.client
    client_ip = client.host if client is not None else None
    refused = _before_body(request, hooks, name, config, client_ip)
    if refused is not None:
        return refused
    headers = request.headers
    content_type = headers.get("content-type")
    limit = config.max_body_bytes or request.app.state.max_body_bytes
    try:
        body = await read_body(request, limit)
    except BodyTooLarge as exc:
        return problem(413, exc.detail)
    raw_headers = request.scope["headers"]
    # Only Twilio (signs the URL) and a query API key read the URL: others skip building it.
    url = _url(request) if auth.scheme in URL_SCHEMES else None
    checked = WebhookRequest(raw_headers, body, url, client_ip)
    try:
        auth.check(checked)
    except WebhookVerificationError as exc:
        challenge = exc.challenge
        return problem(
            exc.status,
            exc.message,
            headers={"WWW-Authenticate": challenge} if challenge else None,
            reason=exc.reason,
        )
    by_trigger = hooks.limiter(name, "trigger", config)
    if by_trigger is not None:
        decision = by_trigger.hit("")
        if not decision:
            return too_many(decision, "trigger's")
    try:
        data, encoding = _body_value(content_type, body)
    except ValueError as exc:
        return problem(400, f"the request body is not valid JSON: {exc}")
    by_tenant = hooks.limiter(name, "tenant", config)
    if by_tenant is not None:
        decision = by_tenant.hit(_tenant(config, headers, data, encoding))
        if not decision:
            return too_many(decision, "tenant's")
    key = _delivery_key(config, auth, checked.header_view, headers, data, encoding)
    payload = {
        "method": request.method,
        "headers": _shown_headers(raw_headers, auth),
        "query": _shown_query(request.scope.get("query_string", b""), auth),
        "body": data,
        "bodyEncoding": encoding,
        "deliveryId": key,
    }
    try:
        result = await hooks.fire(
            Delivery(name, payload, key, {"method": request.method, "delivery_id": key})
        )
    except DatabaseUnavailableError as exc:  # nothing committed: the sender retries
        result = exc
    if isinstance(result, Fired):
        answer = result.to_json()
        del answer["duplicate"]  # the same body as the first delivery's
        headers_out = {"Flowhost-Duplicate": "true"} if result.duplicate else None
        return Response(
            dumps(answer),
            status_code=202,
            headers=headers_out,
            media_type="application/json",
        )
    return _refused(hooks, name, result)


def _before_body(
    request: Request, hooks: WebhookTriggers, name: str, config: WebhookConfig, ip: str | None
) -> Response | None:
    """The refusals that need no body: method, source address' rate, content type."""
    if request.method not in config.methods:
        return problem(405, "method not allowed", headers={"Allow": config.allow_header()})
    by_ip = hooks.limiter(name, "ip", config)
    if by_ip is not None:
        decision = by_ip.hit(ip or "")
        if not decision:
            return too_many(decision, "source address's")
    if not config.accepts(request.headers.get("content-type")):
        accept = ", ".join(config.content_types or ())
        return problem(415, f"this webhook takes {accept}", headers={"Accept": accept})
    return None


def _refused(hooks: WebhookTriggers, name: str, exc: Exception) -> Response:
    if isinstance(exc, TriggerNotFoundError):
        hooks.forget(name)
        return problem(404, "no webhook trigger has this URL")
    if isinstance(exc, TriggerRetiredError):
        hooks.forget(name)
        return problem(410, "this webhook trigger is retired")
    if isinstance(exc, TriggerInputError):
        errors = [{"location": "payload", **e} for e in exc.errors]
        return problem(422, exc.message, errors=errors)
    if isinstance(exc, InvalidInputError):
        return problem(422, exc.message)
    if isinstance(exc, DatabaseUnavailableError):
        return problem(
            503, "the database cannot be reached; try again", headers={"Retry-After": "1"}
        )
    logger.error("webhook trigger %r: the fire failed", name, exc_info=exc)
    return problem(500, "the request failed on the server")


def _url(request: Request) -> str:
    public_url: str | None = request.app.state.public_url
    if public_url is None:
        return str(request.url)
    query = request.scope.get("query_string", b"").decode("latin-1")
    return public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


def _body_value(content_type: str | None, body: bytes) -> tuple[Any, str]:
    """The body as a run sees it: parsed JSON for a JSON type, else UTF-8 text, else base64;
    and which of those ("json", "text", "base64", "none" for no body)."""
    if not body:
        return None, "none"
    if is_json(content_type):
        return json.loads(body), "json"
    try:
        return body.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def _from_source(source: Any, headers: Any, data: Any, encoding: str) -> str | None:
    if source.header is not None:
        return headers.get(source.header) or None
    if encoding != "json":
        return None
    found, value = resolve(data, source.pointer)
    if not found or value is None or isinstance(value, dict | list):
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _tenant(config: WebhookConfig, headers: Any, data: Any, encoding: str) -> str:
    # Requests without a tenant key share one bucket (the empty key).
    return _from_source(config.tenant_key, headers, data, encoding) or ""


def _delivery_key(
    config: WebhookConfig,
    auth: WebhookAuth,
    header_view: Any,
    headers: Any,
    data: Any,
    encoding: str,
) -> str | None:
    if config.dedupe is False:
        return None
    if config.dedupe is None or config.dedupe is True:
        return delivery_id(auth.scheme, header_view, data if encoding == "json" else None)
    return _from_source(config.dedupe, headers, data, encoding)


def _shown_headers(raw_headers: Sequence[tuple[bytes, bytes]], auth: WebhookAuth) -> dict[str, str]:
    extra = {auth.header.lower()} if auth.header else set()
    if auth.hmac is not None:
        extra.add(auth.hmac.header.lower())
    shown: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        header = raw_name.decode("latin-1").lower()
        if header in extra or SECRET_HEADER.search(header):
            continue
        value = raw_value.decode("latin-1")
        shown[header] = f"{shown[header]}, {value}" if header in shown else value
    return shown


def _shown_query(query_string: bytes, auth: WebhookAuth) -> dict[str, str | list[str]]:
    shown: dict[str, str | list[str]] = {}
    if not query_string:
        return shown
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == auth.query:
            continue
        before = shown.get(key)
        if before is None:
            shown[key] = value
        else:
            shown[key] = [*before, value] if isinstance(before, list) else [before, value]
    return shown


class WebhookEndpoint:
    """The route's endpoint as a raw ASGI app (an object, not a function), which Starlette
    calls directly, without the per-request wrappers it gives function endpoints; errors
    raised here still reach the app's exception handlers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        began = time.perf_counter()
        response = await receive_webhook(Request(scope, receive))
        metrics.observe_webhook_ack("trigger", response.status_code, began)
        await response(scope, receive, send)


routes = [Route("/hooks/{trigger}", WebhookEndpoint(), methods=list(HTTP_METHODS))]
