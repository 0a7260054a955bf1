"""A webhook trigger's config: what `/hooks/{trigger}` accepts, read once per trigger version.

```json
{"methods": ["POST"],
 "auth": {"scheme": "github", "secret_env": "GITHUB_WEBHOOK_SECRET"},
 "content_types": ["application/json"],
 "max_body_bytes": 262144,
 "dedupe": {"header": "X-Request-Id"},
 "tenant_key": {"pointer": "/installation/id"},
 "rate_limits": {"trigger": {"limit": 100, "period": 1},
                 "ip": {"limit": 20, "period": 1, "burst": 40},
                 "tenant": {"limit": 10, "period": 1}},
 "schema": {...}}
```

`auth` is required (`{"scheme": "none"}` says so on purpose); everything else is optional.
Pure: `WebhookConfig.parse` raises `WebhookConfigError` with the JSON Pointer of the member at
fault, and `problems(config)` lists them for the trigger registry's config check.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from flowhost._core import RateLimiter
from flowhost.engine.json_pointer import parse_pointer
from flowhost.errors import ConfigurationError
from flowhost.webhooks import WebhookAuth

KNOWN_FIELDS = (
    "auth",
    "content_types",
    "dedupe",
    "max_body_bytes",
    "methods",
    "rate_limits",
    "schema",
    "tenant_key",
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
LIMIT_KINDS = ("trigger", "ip", "tenant")
MEDIA_RANGE = re.compile(r"^[a-z0-9!#$&^_.+-]+/(\*|[a-z0-9!#$&^_.+-]+)$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
MAX_BODY_BYTES = 64 * 1024 * 1024


class WebhookConfigError(ValueError):
    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"{pointer}: {message}")
        self.pointer = pointer
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int
    period: float
    burst: int | None = None

    def limiter(self) -> RateLimiter:
        return RateLimiter("gcra", self.limit, self.period, self.burst)


@dataclasses.dataclass(frozen=True, slots=True)
class ValueSource:
    """Where a request carries a value: a header, or a JSON Pointer into the JSON body."""

    header: str | None = None
    pointer: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookConfig:
    methods: frozenset[str]
    auth: Mapping[str, Any] | None
    content_types: tuple[str, ...] | None
    max_body_bytes: int | None
    # None: the auth scheme's delivery id (flowhost.webhooks.delivery_id); False: no dedupe.
    dedupe: ValueSource | bool | None
    tenant_key: ValueSource | None
    rate_limits: Mapping[str, RateLimit]

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> WebhookConfig:
        unknown = sorted(set(config) - set(KNOWN_FIELDS))
        if unknown:
            raise WebhookConfigError(
                f"/config/{unknown[0]}",
                f"not a field of a webhook trigger (fields: {', '.join(KNOWN_FIELDS)})",
            )
        if "auth" not in config:
            raise WebhookConfigError(
                "/config/auth", 'required: a scheme, or {"scheme": "none"} for an open webhook'
            )
        tenant = _source(config.get("tenant_key"), "/config/tenant_key")
        limits = _rate_limits(config.get("rate_limits"))
        if "tenant" in limits and tenant is None:
            raise WebhookConfigError(
                "/config/rate_limits/tenant", "needs tenant_key (where the tenant is read)"
            )
        dedupe = config.get("dedupe")
        return cls(
            methods=_methods(config.get("methods", ["POST"])),
            auth=config["auth"],
            content_types=_content_types(config.get("content_types")),
            max_body_bytes=_body_limit(config.get("max_body_bytes")),
            dedupe=dedupe if dedupe in (None, False) else _source(dedupe, "/config/dedupe"),
            tenant_key=tenant,
            rate_limits=limits,
        )

    def allow_header(self) -> str:
        return ", ".join(m for m in HTTP_METHODS if m in self.methods)

    def accepts(self, content_type: str | None) -> bool:
        if self.content_types is None:
            return True
        media = (content_type or "").split(";", 1)[0].strip().lower()
        for allowed in self.content_types:
            if allowed == media or (
                allowed.endswith("/*") and media.startswith(allowed[:-1]) and media
            ):
                return True
        return False


def problems(
    config: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """(JSON Pointer, message) of each problem of a webhook trigger's config (the first found:
    the config is read in one pass). A `secret_env` variable not set here is not a problem: the
    host that serves the webhook reads it (and answers 500 while it is missing)."""
    try:
        parsed = WebhookConfig.parse(config)
    except WebhookConfigError as exc:
        return [(exc.pointer, exc.message)]
    try:
        WebhookAuth.from_config(parsed.auth, environ=environ)
    except ConfigurationError as exc:
        field = str(exc.details.get("field") or "auth")
        if field == "auth.secret_env" and "is not set" in exc.message:
            return []
        return [("/config/" + field.replace(".", "/"), exc.message.split(": ", 1)[-1])]
    return []


def _methods(value: object) -> frozenset[str]:
    if value == "*":
        return frozenset(HTTP_METHODS)
    if not isinstance(value, list) or not value:
        raise WebhookConfigError("/config/methods", 'a list of HTTP methods, or "*" for any')
    for position, method in enumerate(value):
        if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
            raise WebhookConfigError(
                f"/config/methods/{position}", f"not one of {', '.join(HTTP_METHODS)}"
            )
    # HEAD is not implied by GET: every call that passes fires, and a HEAD is meant to be safe.
    return frozenset(m.upper() for m in value)


def _content_types(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise WebhookConfigError("/config/content_types", "a non-empty list of media types")
    for position, media in enumerate(value):
        if not isinstance(media, str) or not MEDIA_RANGE.match(media.lower()):
            raise WebhookConfigError(
                f"/config/content_types/{position}",
                "a media type like application/json, or a range like text/*",
            )
    return tuple(media.lower() for media in value)


def _body_limit(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BODY_BYTES:
        raise WebhookConfigError("/config/max_body_bytes", f"an integer from 1 to {MAX_BODY_BYTES}")
    return value


def _source(value: object, pointer: str) -> ValueSource | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or len(value) != 1 or not set(value) <= {"header", "pointer"}:
        raise WebhookConfigError(pointer, 'either {"header": NAME} or {"pointer": JSON_POINTER}')
    if "header" in value:
        header = value["header"]
        if not isinstance(header, str) or not HEADER_NAME.match(header):
            raise WebhookConfigError(f"{pointer}/header", "a header name")
        return ValueSource(header=header.lower())
    try:
        parse_pointer(value["pointer"])
    except ValueError as exc:
        raise WebhookConfigError(f"{pointer}/pointer", str(exc)) from None
    if value["pointer"] == "":
        raise WebhookConfigError(f"{pointer}/pointer", "a pointer to a member of the body")
    return ValueSource(pointer=value["pointer"])


def _rate_limits(value: object) -> dict[str, RateLimit]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WebhookConfigError("/config/rate_limits", "an object: trigger, ip, tenant")
    found = {}
    for kind, limit in value.items():
        pointer = f"/config/rate_limits/{kind}"
        if kind not in LIMIT_KINDS:
            raise WebhookConfigError(pointer, f"not one of {', '.join(LIMIT_KINDS)}")
        if not isinstance(limit, Mapping) or not set(limit) <= {"limit", "period", "burst"}:
            raise WebhookConfigError(pointer, "an object: limit, period (seconds), burst")
        parsed = RateLimit(limit.get("limit"), limit.get("period", 1), limit.get("burst"))  # type: ignore[arg-type]
        try:
            parsed.limiter()
        except (TypeError, ValueError) as exc:
            raise WebhookConfigError(pointer, f"not a valid rate limit: {exc}") from None
        found[kind] = parsed
    return found
