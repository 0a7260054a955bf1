"""Connectors and broker triggers as configured: pure domain code, no I/O.

A connector is one broker connection, declared in `flowhost.toml` under `[connectors.NAME]`
(where the broker is, how to log in and trust it) and shared by the triggers that name it. A
trigger of type `mqtt` or `amqp` says what to take from that broker (topic filters, a queue)
and how to read the payload. Secrets are never in either: a connector names the environment
variable holding its password (`password_env`), read when it connects.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from flowhost.db.database import redact
from flowhost.errors import ConfigurationError

CONNECTOR_TYPES = ("mqtt", "amqp")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SCHEMES = {"mqtt": ("mqtt", "mqtts"), "amqp": ("amqp", "amqps")}
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "amqp": 5672, "amqps": 5671}
MQTT_PROTOCOLS = ("3.1.1", "5")
MQTT_SESSIONS = ("clean", "persistent")


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One broker connection. `url` holds no password (refused there): `password_env` names
    the variable that does."""

    name: str
    type: str
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password_env: str | None = None
    # TLS: the CA to trust (default: the system's), a client certificate, and whether to skip
    # the check of the server's name (tests with self-signed certificates only).
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    # MQTT: protocol version, client id (default "flowhost-NAME"; hosts that are not the
    # exclusive holder add their host id), clean or persistent session, keepalive.
    protocol: str = "3.1.1"
    client_id: str | None = None
    session: str = "clean"
    session_expiry: int = 3600
    keepalive: int = 30
    # AMQP: the virtual host (the URL's path).
    vhost: str = "/"
    # Reconnects: exponential backoff from `backoff_initial` to `backoff_max` seconds, with
    # full jitter. Exclusive triggers: the lease's time to live.
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    lease_ttl: float = 15.0
    connect_timeout: float = 10.0

    def to_json(self) -> dict[str, Any]:
        """What the API and state rows show: where, not secrets."""
        return {
            "name": self.name,
            "type": self.type,
            "host": self.host,
            "port": self.port,
            "tls": self.tls,
            "username": self.username,
            "passwordEnv": self.password_env,
        }

    @property
    def address(self) -> str:
        scheme = SCHEMES[self.type][1 if self.tls else 0]
        return f"{scheme}://{self.host}:{self.port}"


_FLOAT_KEYS = ("backoff_initial", "backoff_max", "lease_ttl", "connect_timeout")
_INT_KEYS = ("session_expiry", "keepalive")
_TEXT_KEYS = (
    "username",
    "password_env",
    "ca_file",
    "cert_file",
    "key_file",
    "client_id",
    "protocol",
    "session",
)
_KNOWN_KEYS = {"type", "url", "tls_insecure", *_FLOAT_KEYS, *_INT_KEYS, *_TEXT_KEYS}


def parse_connector(name: str, table: Mapping[str, Any], where: str) -> ConnectorConfig:
    """A `[connectors.NAME]` table; ConfigurationError names the bad key (`where`: the file)."""

    def fail(message: str) -> ConfigurationError:
        return ConfigurationError(f"{where}: connectors.{name}: {message}")

    if not NAME_PATTERN.match(name):
        raise fail("a connector name is letters, digits and _ . - (at most 64)")
    if not isinstance(table, Mapping):
        raise fail("must be a table")
    unknown = sorted(set(table) - _KNOWN_KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KNOWN_KEYS))})")
    values = {"name": name, **_url_values(table, fail), **_option_values(table, fail)}
    config = ConnectorConfig(**values)
    if config.password_env is not None and not ENV_NAME_PATTERN.match(config.password_env):
        raise fail("password_env must be an environment variable's name")
    if config.protocol not in MQTT_PROTOCOLS:
        raise fail(f"protocol must be one of {', '.join(MQTT_PROTOCOLS)}")
    if config.session not in MQTT_SESSIONS:
        raise fail(f"session must be one of {', '.join(MQTT_SESSIONS)}")
    if config.backoff_max < config.backoff_initial:
        raise fail("backoff_max must be at least backoff_initial")
    return config


def _url_values(
    table: Mapping[str, Any], fail: Callable[[str], ConfigurationError]
) -> dict[str, Any]:
    url = table.get("url")
    if not isinstance(url, str) or not url:
        raise fail("url is required (mqtt://, mqtts://, amqp:// or amqps://)")
    parts = urlsplit(url)
    kind = table.get("type") or next((t for t, s in SCHEMES.items() if parts.scheme in s), None)
    if kind not in CONNECTOR_TYPES or parts.scheme not in SCHEMES[kind]:
        raise fail(f"url must start with mqtt://, mqtts://, amqp:// or amqps:// (got {url!r})")
    if parts.password is not None:
        raise fail("the url holds a password: name its environment variable in password_env")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise fail(f"url has a bad port: {exc}") from None
    values: dict[str, Any] = {
        "type": kind,
        "host": parts.hostname or "localhost",
        "port": port,
        "tls": parts.scheme.endswith("s"),
    }
    if parts.username:
        values["username"] = unquote(parts.username)
    if kind == "amqp" and parts.path not in ("", "/"):
        values["vhost"] = unquote(parts.path[1:])
    return values


def _option_values(
    table: Mapping[str, Any], fail: Callable[[str], ConfigurationError]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in _TEXT_KEYS:
        if key in table:
            if not isinstance(table[key], str) or not table[key]:
                raise fail(f"{key} must be a non-empty string")
            values[key] = table[key]
    for key in _INT_KEYS:
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise fail(f"{key} must be an integer >= 0")
            values[key] = value
    for key in _FLOAT_KEYS:
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise fail(f"{key} must be a positive number of seconds")
            values[key] = float(value)
    if "tls_insecure" in table:
        if not isinstance(table["tls_insecure"], bool):
            raise fail("tls_insecure must be true or false")
        values["tls_insecure"] = table["tls_insecure"]
    return values


def parse_connectors(
    tables: Any, where: str, environ: Mapping[str, str]
) -> tuple[ConnectorConfig, ...]:
    """`[connectors]` of flowhost.toml, each url overridable by `FLOWHOST_CONNECTOR_<NAME>_URL`
    (NAME upper-cased, `.` and `-` as `_`): how a deployment points flowhost at its brokers."""
    if tables is None:
        tables = {}
    if not isinstance(tables, Mapping):
        raise ConfigurationError(f"{where}: connectors must be a table of connector tables")
    found = []
    for name, table in sorted(tables.items()):
        override = environ.get(env_url_name(name))
        if override and isinstance(table, Mapping):
            table = {**table, "url": override}
        found.append(parse_connector(name, table, where))
    return tuple(found)


def env_url_name(connector: str) -> str:
    return "FLOWHOST_CONNECTOR_" + re.sub(r"[^A-Za-z0-9]", "_", connector).upper() + "_URL"


def password_of(config: ConnectorConfig, environ: Mapping[str, str]) -> str | None:
    """The connector's password from its environment variable; ConfigurationError if the
    variable is named but not set (the message names the variable, never a value)."""
    if config.password_env is None:
        return None
    value = environ.get(config.password_env)
    if value is None:
        raise ConfigurationError(
            f"connector {config.name}: the environment variable {config.password_env} "
            "(password_env) is not set"
        )
    return value


def without_secrets(text: str, config: ConnectorConfig, environ: Mapping[str, str]) -> str:
    """An error of a client library, fit for logs and state rows: URL passwords masked, and so
    is the connector's own password wherever a library quoted it."""
    text = redact(text)
    password = environ.get(config.password_env) if config.password_env else None
    return text.replace(password, "***") if password else text


def backoff_delay(attempt: int, initial: float, maximum: float, random: float) -> float:
    """Seconds to wait before reconnect attempt `attempt` (1 = after the first failure):
    "full jitter", a uniform draw (`random` in [0, 1)) below an exponential cap, so that many
    hosts that lost a broker at once do not all come back at the same instant. Never below a
    tenth of `initial`, so a failing broker is not hammered."""
    cap = min(maximum, initial * math.pow(2, max(0, attempt - 1)))
    return max(initial / 10, cap * random)
