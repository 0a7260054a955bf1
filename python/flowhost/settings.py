"""Settings of a flowhost project: `flowhost.toml`, overridden by `FLOWHOST_*` variables.

Precedence, lowest first: built-in defaults, `flowhost.toml` in the project directory, the
environment (`DATABASE_URL`, then `FLOWHOST_DATABASE_URL`, and the other `FLOWHOST_*` names below).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowhost.connectors.config import ENV_NAME_PATTERN, ConnectorConfig, parse_connectors
from flowhost.errors import ConfigurationError

CONFIG_FILE = "flowhost.toml"
# Where `flowhost serve` and `flowhost dev` serve HTTP when told nothing else.
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8600
# An admin token shorter than this is too easy to guess.
MIN_API_TOKEN_LENGTH = 16


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Everything a host, the CLI or a test needs to know about one project."""

    project_dir: Path
    database_url: str | None = None
    functions_dir: str = "functions"
    # Concurrent step executions per host. Steps mostly wait (on I/O, on Postgres), and their
    # bookkeeping is group-committed, so more in flight means bigger batches per transaction.
    concurrency: int = 100
    # Jobs fetched per dequeue round trip.
    batch_size: int = 25
    # A job whose host stops heartbeating for this long is picked again by another host.
    heartbeat_timeout: float = 30.0
    # How often a host records itself as alive, and how stale a record may be to count as alive.
    host_heartbeat_interval: float = 2.0
    pool_size: int = 8
    # Child processes (flowhost.workers). The Python interpreter of functions that have no
    # `.venv` of their own (default: the host's), the Node binary, and extra Node arguments
    # (a TypeScript loader: "--import tsx").
    python: str | None = None
    node: str = "node"
    node_args: str = ""
    # Children kept started and waiting for a job, per runtime and interpreter.
    warm_python: int = 4
    warm_node: int = 2
    # At most this many children per runtime at once (default: `concurrency`).
    max_children: int | None = None
    # Child and host heartbeat each other at this interval; 3 missed intervals mean gone.
    worker_heartbeat_interval: float = 5.0
    # Between a cancel and SIGTERM, and between SIGTERM and SIGKILL.
    kill_grace: float = 2.0
    # A host checks that the runs of the attempts it runs are still live this often (and at
    # once when told a run was canceled): the longest an attempt outlives its run if the
    # host missed the notification.
    cancel_check_interval: float = 2.0
    # Where HTTP is served ("[HOST:]PORT"): by a host (`flowhost host --http`; None: it does
    # not), by `flowhost serve` (None: DEFAULT_HTTP_PORT on 127.0.0.1) and by `flowhost dev`
    # (None: DEFAULT_HTTP_PORT or the next free port).
    http: str | None = None
    # The URL the host's HTTP is reached at from outside (behind a proxy, say), which webhook
    # awaits' resolve URLs start with. Default: the address the host's HTTP is bound to.
    public_url: str | None = None
    # The admin API's bearer token (docs/api.md). None: the admin API refuses every request
    # (403), except under `flowhost dev`, which makes one. Kept out of repr(), so that no log of
    # the settings shows it.
    api_token: str | None = dataclasses.field(default=None, repr=False)
    # The bearer token Prometheus sends to scrape /metrics (docs/metrics.md). None: /metrics
    # is open (it holds figures, never run data). Kept out of repr().
    metrics_token: str | None = dataclasses.field(default=None, repr=False)
    # Request bodies above this many bytes are refused (413), by the API and the webhooks.
    max_body_bytes: int = 1024 * 1024
    # Seconds without activity after which a live run is stalled; None: each flow's own,
    # computed from its definition (docs/operations.md).
    stall_timeout: float | None = None
    # How often each host looks for stalled runs.
    stall_check_interval: float = 30.0
    # Event triggers (docs/triggers.md): the longest chain of runs started by event triggers
    # (a run's emit starting a run whose emit starts a run ...), and how often a host checks
    # that its index of event triggers is current when no notification told it.
    trigger_max_depth: int = 10
    trigger_check_interval: float = 2.0
    # Housekeeping (docs/operations.md): how often each host prunes what only grows, and how
    # long a trigger's delivery keys (webhook delivery ids, message ids) are kept: a delivery
    # repeated after that starts runs again. Providers retry for up to 3 days (Stripe).
    housekeeping_interval: float = 300.0
    delivery_retention: float = 7 * 24 * 3600.0
    # Schedules (docs/schedules.md): a planned time a scheduler reaches at most this many seconds
    # late still fires; one older than that was missed (no host ran) and follows the schedule's
    # catch-up policy.
    schedule_grace: float = 10.0
    # Broker connections (`[connectors.NAME]` tables; docs/connectors.md), each url
    # overridable by FLOWHOST_CONNECTOR_<NAME>_URL.
    connectors: tuple[ConnectorConfig, ...] = ()
    # Host environment variables that steps' HTTP actions may send as `{secret:NAME}`
    # (docs/connectors.md#http-actions): the values stay in the host, redacted from records.
    http_secrets: tuple[str, ...] = ()

    @property
    def functions_path(self) -> Path:
        return self.project_dir / self.functions_dir

    @property
    def state_dir(self) -> Path:
        """Per-project working directory (embedded Postgres data lives here)."""
        return self.project_dir / ".flowhost"

    @property
    def python_interpreter(self) -> str:
        return self.python or sys.executable

    @property
    def children_per_runtime(self) -> int:
        return self.max_children or self.concurrency

    @property
    def host_stale_after(self) -> float:
        """Seconds after which a host that stopped saying it is alive no longer counts."""
        return 3 * self.host_heartbeat_interval

    @property
    def embedded(self) -> bool:
        return self.database_url is None


_FIELDS: dict[str, tuple[str, type]] = {
    # toml key (under [flowhost] or top level) -> (field, type)
    "database_url": ("database_url", str),
    "functions_dir": ("functions_dir", str),
    "concurrency": ("concurrency", int),
    "batch_size": ("batch_size", int),
    "heartbeat_timeout": ("heartbeat_timeout", float),
    "host_heartbeat_interval": ("host_heartbeat_interval", float),
    "pool_size": ("pool_size", int),
    "python": ("python", str),
    "node": ("node", str),
    "node_args": ("node_args", str),
    "warm_python": ("warm_python", int),
    "warm_node": ("warm_node", int),
    "max_children": ("max_children", int),
    "worker_heartbeat_interval": ("worker_heartbeat_interval", float),
    "kill_grace": ("kill_grace", float),
    "cancel_check_interval": ("cancel_check_interval", float),
    "http": ("http", str),
    "public_url": ("public_url", str),
    "api_token": ("api_token", str),
    "metrics_token": ("metrics_token", str),
    "max_body_bytes": ("max_body_bytes", int),
    "stall_timeout": ("stall_timeout", float),
    "stall_check_interval": ("stall_check_interval", float),
    "trigger_max_depth": ("trigger_max_depth", int),
    "trigger_check_interval": ("trigger_check_interval", float),
    "housekeeping_interval": ("housekeeping_interval", float),
    "delivery_retention": ("delivery_retention", float),
    "schedule_grace": ("schedule_grace", float),
    "http_secrets": ("http_secrets", tuple),
}


def load_settings(
    project_dir: Path | str = ".",
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read the project's settings; raises ConfigurationError naming the bad key."""
    environ = os.environ if environ is None else environ
    root = Path(project_dir).resolve()
    if not root.is_dir():
        raise ConfigurationError(f"project directory {root} does not exist")
    values: dict[str, Any] = {}
    values.update(_read_file(root / CONFIG_FILE))
    values["connectors"] = parse_connectors(
        values.pop("connectors", None), str(root / CONFIG_FILE), environ
    )
    values.update(_read_environ(environ))
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(project_dir=root, **values)
    _check(settings)
    return settings


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    table = dict(document.get("flowhost", document))
    if "connectors" in document and "connectors" not in table:
        table["connectors"] = document["connectors"]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "flowhost":
            continue
        if key == "connectors":
            values["connectors"] = value  # parsed by load_settings, with the environment
            continue
        if key not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise ConfigurationError(f"{path}: unknown setting {key!r} (known: {known})")
        field, kind = _FIELDS[key]
        values[field] = _coerce(kind, value, f"{path}: {key}")
    return values


def _read_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if environ.get("DATABASE_URL"):
        values["database_url"] = environ["DATABASE_URL"]
    for key, (field, kind) in _FIELDS.items():
        name = f"FLOWHOST_{key.upper()}"
        if environ.get(name):
            values[field] = _coerce(kind, environ[name], name)
    return values


def _coerce(kind: type, value: Any, where: str) -> Any:
    if kind is str and isinstance(value, str):
        return value
    if kind is tuple:
        # A list of names, or (from the environment) one string of comma-separated names.
        names = value.split(",") if isinstance(value, str) else value
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            found = tuple(n.strip() for n in names if n.strip())
            if all(ENV_NAME_PATTERN.match(n) for n in found):
                return found
        raise ConfigurationError(f"{where}: expected a list of environment variable names")
    try:
        if kind is int and not isinstance(value, bool):
            return int(value)
        if kind is float and not isinstance(value, bool):
            return float(value)
    except (TypeError, ValueError):
        pass
    raise ConfigurationError(f"{where}: expected {kind.__name__}, got {value!r}")


def _check(settings: Settings) -> None:
    positive = (
        "concurrency",
        "batch_size",
        "heartbeat_timeout",
        "host_heartbeat_interval",
        "pool_size",
        "worker_heartbeat_interval",
        "kill_grace",
        "cancel_check_interval",
        "stall_check_interval",
        "max_body_bytes",
        "trigger_max_depth",
        "trigger_check_interval",
        "housekeeping_interval",
        "delivery_retention",
        "schedule_grace",
    )
    for name in positive:
        if getattr(settings, name) <= 0:
            raise ConfigurationError(f"setting {name} must be positive")
    for name in ("warm_python", "warm_node"):
        if getattr(settings, name) < 0:
            raise ConfigurationError(f"setting {name} must be 0 or more")
    if settings.max_children is not None and settings.max_children <= 0:
        raise ConfigurationError("setting max_children must be positive")
    if settings.http is not None:
        parse_http_address(settings.http)
    if settings.public_url is not None and not settings.public_url.startswith(
        ("http://", "https://")
    ):
        raise ConfigurationError("public_url must be an http:// or https:// URL")
    if settings.api_token is not None:
        check_api_token(settings.api_token)
    if settings.metrics_token is not None:
        check_token(settings.metrics_token, "metrics_token")
    if settings.stall_timeout is not None and settings.stall_timeout <= 0:
        raise ConfigurationError("setting stall_timeout must be positive")
    url = settings.database_url
    if url is not None and not (url.startswith(("postgres://", "postgresql://")) or "=" in url):
        raise ConfigurationError("database_url must be a postgresql:// URL or a libpq DSN")


def check_api_token(token: str) -> None:
    """An admin token: at least MIN_API_TOKEN_LENGTH printable characters, no spaces (it travels
    in an `Authorization: Bearer` header). The message never quotes it."""
    check_token(token, "api_token")


def check_token(token: str, name: str) -> None:
    """A bearer token of setting `name` (see check_api_token)."""
    if len(token) < MIN_API_TOKEN_LENGTH:
        raise ConfigurationError(
            f"setting {name} must be at least {MIN_API_TOKEN_LENGTH} characters long"
        )
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigurationError(
            f"setting {name} must be printable ASCII without spaces (it is sent in an "
            "Authorization header)"
        )


def parse_http_address(text: str) -> tuple[str, int]:
    """`[HOST:]PORT` (HOST default 127.0.0.1; `[::1]:8000` for IPv6) -> (host, port)."""
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ConfigurationError(f"http address {text!r} is not [HOST:]PORT") from None
    if not 0 <= number <= 65535:
        raise ConfigurationError(f"http port {number} is not 0-65535")
    return host, number
