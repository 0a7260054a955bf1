"""Exit codes scripts can rely on (also listed in docs/cli.md)."""

from __future__ import annotations

from flowhost.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    DiscoveryError,
    FlowDefinitionError,
    FlowhostError,
    FlowNotFoundError,
    InvalidInputError,
    RunNotFoundError,
    RunStateError,
    StepNotFoundError,
    SubscriptionNotFoundError,
    TriggerConflictError,
    TriggerNotFoundError,
    TriggerRetiredError,
)

OK = 0
RUN_FAILED = 1  # the run ended failed (or another error)
USAGE = 2  # bad arguments, malformed input, invalid configuration
NOT_FOUND = 3  # unknown flow, run, step or trigger
DATABASE_UNAVAILABLE = 4
INVALID_FUNCTIONS = 5  # the functions directory or a flow definition is invalid
WRONG_STATE = 6  # the run's (or trigger's) state does not allow it (fire a retired trigger)
INTERRUPTED = 130

_BY_ERROR: list[tuple[type[FlowhostError], int]] = [
    (InvalidInputError, USAGE),
    (ConfigurationError, USAGE),
    (FlowNotFoundError, NOT_FOUND),
    (RunNotFoundError, NOT_FOUND),
    (StepNotFoundError, NOT_FOUND),
    (TriggerNotFoundError, NOT_FOUND),
    (SubscriptionNotFoundError, NOT_FOUND),
    (RunStateError, WRONG_STATE),
    (TriggerRetiredError, WRONG_STATE),
    (TriggerConflictError, WRONG_STATE),
    (DatabaseUnavailableError, DATABASE_UNAVAILABLE),
    (FlowDefinitionError, INVALID_FUNCTIONS),
    (DiscoveryError, INVALID_FUNCTIONS),
]


def exit_code_for(error: FlowhostError) -> int:
    for kind, code in _BY_ERROR:
        if isinstance(error, kind):
            return code
    return RUN_FAILED
