"""`WebhookAuth`: a webhook trigger's ``auth`` config, validated once, checked per request.

A config is a mapping (docs/webhooks.md has one per scheme)::

    {"scheme": "stripe", "secret_env": "STRIPE_WEBHOOK_SECRET", "tolerance": 300,
     "allow_ips": ["3.18.12.63/32"], "trusted_proxies": ["10.0.0.0/8"]}

`scheme` is a signature scheme (``github``, ``stripe``, ``slack``, ``standard-webhooks``,
``shopify``, ``twilio``, ``hmac-sha256``) or ``bearer``, ``basic``, ``api-key`` or ``none``.
Every scheme but ``none`` has a secret: ``secret`` (a string, or a list of strings while
rotating) or ``secret_env`` (the name of an environment variable holding it, or a list of
names). `allow_ips` (CIDRs) adds a source address check to any scheme. Unknown fields are
refused, so a typo never turns a check off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowhost.errors import ConfigurationError
from flowhost.webhooks import access
from flowhost.webhooks.generic_hmac import HmacOptions
from flowhost.webhooks.request import WebhookRequest
from flowhost.webhooks.signatures import SCHEMES, Scheme, verify_with_keys
from flowhost.webhooks.signing import (
    Instant,
    SignedRequest,
    check_tolerance,
    secret_items,
    unix_time,
)

ACCESS_SCHEMES = ("api-key", "basic", "bearer", "none")
AUTH_SCHEMES = tuple(sorted((*SCHEMES, *ACCESS_SCHEMES)))
COMMON_FIELDS = {"scheme", "allow_ips", "trusted_proxies"}
SECRET_FIELDS = {"secret", "secret_env"}
# The fields each scheme takes besides the common ones.
SCHEME_FIELDS: dict[str, set[str]] = {
    **{name: {*SECRET_FIELDS} for name in SCHEMES},
    "stripe": {*SECRET_FIELDS, "tolerance"},
    "slack": {*SECRET_FIELDS, "tolerance"},
    "standard-webhooks": {*SECRET_FIELDS, "tolerance"},
    "twilio": {*SECRET_FIELDS, "url"},
    "hmac-sha256": {*SECRET_FIELDS, "tolerance", "hmac"},
    "bearer": {*SECRET_FIELDS},
    "basic": {*SECRET_FIELDS, "username"},
    "api-key": {*SECRET_FIELDS, "header", "query"},
    "none": set(),
}
REDACTED = "[redacted]"


def fail(name: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"auth.{name}: {message}", field=f"auth.{name}")


@dataclass(frozen=True, slots=True)
class WebhookAuth:
    """A validated ``auth`` config. Build it with `from_config`; call `check` per request."""

    scheme: str
    keys: tuple[bytes, ...] = field(default=(), repr=False)
    """HMAC keys of a signature scheme; SHA-256 digests of the tokens, passwords or API keys."""
    username: bytes = field(default=b"", repr=False)
    """SHA-256 digest of the ``basic`` user name."""
    tolerance: float | None = 300
    url: str | None = None
    hmac: HmacOptions | None = None
    header: str | None = None
    query: str | None = None
    ip_allow_list: access.IpAllowList | None = None

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | None, *, environ: Mapping[str, str] | None = None
    ) -> WebhookAuth:
        """Validate a trigger's ``auth`` mapping (None: no auth) and read its secrets, from
        `environ` (default `os.environ`) for ``secret_env``. Raises `ConfigurationError` whose
        `details["field"]` names the field at fault (``auth.secret``...)."""
        if config is None:
            return cls("none")
        if not isinstance(config, Mapping):
            raise fail("scheme", "auth is a mapping with a scheme")
        scheme = config.get("scheme")
        if scheme not in SCHEME_FIELDS:
            raise fail("scheme", f"{scheme!r} is not one of {', '.join(AUTH_SCHEMES)}")
        unknown = sorted(set(config) - COMMON_FIELDS - SCHEME_FIELDS[scheme])
        if unknown:
            raise fail(unknown[0], f"not a field of the {scheme} scheme")
        return cls(
            scheme,
            keys=read_keys(scheme, config, os.environ if environ is None else environ),
            username=read_username(scheme, config),
            tolerance=read_tolerance(config),
            url=read_text(config, "url"),
            hmac=read_hmac(config),
            ip_allow_list=read_allow_list(config),
            **read_api_key_location(scheme, config),
        )

    def check(self, request: WebhookRequest, *, now: Instant | None = None) -> None:
        """Pass, or raise `WebhookVerificationError` (`reason`, and `status` 401 or 403)."""
        headers = request.header_view
        if self.ip_allow_list is not None:
            self.ip_allow_list.check(request.client_ip, headers)
        if self.scheme == "none":
            return
        if self.scheme == "bearer":
            access.check_bearer(self.keys, headers)
        elif self.scheme == "basic":
            access.check_basic(self.username, self.keys, headers)
        elif self.scheme == "api-key":
            access.check_api_key(
                self.keys, headers, request.url, header=self.header, query=self.query
            )
        else:
            signed = SignedRequest(
                headers=headers,
                body=request.body,
                now=unix_time(now),
                tolerance=self.tolerance,
                url=self.url or request.url,
            )
            verify_with_keys(SCHEMES[self.scheme], self.keys, signed, self.hmac)


def read_secrets(config: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[str | bytes, ...]:
    if ("secret" in config) == ("secret_env" in config):
        raise fail("secret", "give exactly one of secret and secret_env")
    if "secret" in config:
        return secret_items(config["secret"], "auth.secret")
    names = config["secret_env"]
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise fail("secret_env", "an environment variable name, or a list of them")
    values = []
    for name in names:
        value = environ.get(name)
        if not value or not value.strip():
            raise fail("secret_env", f"the environment variable {name} is not set")
        values.append(value)
    return secret_items(values, "auth.secret_env")


def read_keys(
    scheme: str, config: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[bytes, ...]:
    if scheme == "none":
        return ()
    secrets = read_secrets(config, environ)
    if scheme in SCHEMES:
        chosen: Scheme = SCHEMES[scheme]
        return chosen.keys(secrets, "auth.secret")
    as_bytes = (s.encode("utf-8") if isinstance(s, str) else s for s in secrets)
    return tuple(access.digest(secret) for secret in as_bytes)


def read_username(scheme: str, config: Mapping[str, Any]) -> bytes:
    if scheme != "basic":
        return b""
    username = config.get("username")
    if not isinstance(username, str) or not username or ":" in username:
        raise fail("username", "a non-empty user name without ':'")
    return access.digest(username.encode("utf-8"))


def read_tolerance(config: Mapping[str, Any]) -> float | None:
    try:
        return check_tolerance(config.get("tolerance", 300))
    except ConfigurationError:
        raise fail("tolerance", "a positive number of seconds, or null for no check") from None


def read_text(config: Mapping[str, Any], name: str) -> str | None:
    value = config.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise fail(name, "a non-empty string")
    return value


def read_hmac(config: Mapping[str, Any]) -> HmacOptions | None:
    if "hmac" not in config:
        return None
    try:
        return HmacOptions.from_config(config["hmac"])
    except (ConfigurationError, TypeError) as exc:
        where = getattr(exc, "details", {}).get("field", "hmac")
        raise fail(where, str(exc).split(": ", 1)[-1]) from None


def read_api_key_location(scheme: str, config: Mapping[str, Any]) -> dict[str, str | None]:
    if scheme != "api-key":
        return {}
    if "header" in config and "query" in config:
        raise fail("header", "give one of header and query")
    if "query" in config:
        return {"query": read_text(config, "query")}
    header = read_text(config, "header") or "X-API-Key"
    try:
        HmacOptions(header=header)  # the same header-name rule
    except ConfigurationError:
        raise fail("header", f"{header!r} is not a header name") from None
    return {"header": header}


def read_allow_list(config: Mapping[str, Any]) -> access.IpAllowList | None:
    entries = config.get("allow_ips")
    proxies = config.get("trusted_proxies", [])
    if entries is None:
        if "trusted_proxies" in config:
            raise fail("trusted_proxies", "only meaningful with allow_ips")
        return None
    for name, value in (("allow_ips", entries), ("trusted_proxies", proxies)):
        if not isinstance(value, list) or (name == "allow_ips" and not value):
            raise fail(name, "a non-empty list of CIDR networks")
    return access.IpAllowList(
        access.parse_networks(entries, "auth.allow_ips"),
        access.parse_networks(proxies, "auth.trusted_proxies"),
    )


def redact(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an ``auth`` config safe to show (API answers, logs, trigger events): literal
    secrets are replaced; ``secret_env`` names stay, they are not secret."""
    shown = dict(config)
    if "secret" in shown:
        secret = shown["secret"]
        shown["secret"] = [REDACTED] * len(secret) if isinstance(secret, list) else REDACTED
    return shown
