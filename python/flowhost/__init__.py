"""flowhost: a durable workflow and job host on Postgres.

Steps are written with the `flowhost_worker` SDK; this package hosts and runs them.
"""

from flowhost._core import __version__
from flowhost.errors import (
    CloudEventError,
    ConfigurationError,
    CronSyntaxError,
    DatabaseError,
    DatabaseUnavailableError,
    DiscoveryError,
    EventNameError,
    FlowDefinitionError,
    FlowhostError,
    FlowNotFoundError,
    InvalidInputError,
    MigrationError,
    PatternError,
    RunNotFoundError,
)
from flowhost.settings import Settings, load_settings

__all__ = [
    "CloudEventError",
    "ConfigurationError",
    "CronSyntaxError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DiscoveryError",
    "EventNameError",
    "FlowDefinitionError",
    "FlowNotFoundError",
    "FlowhostError",
    "InvalidInputError",
    "MigrationError",
    "PatternError",
    "RunNotFoundError",
    "Settings",
    "__version__",
    "load_settings",
]
