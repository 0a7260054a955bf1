"""The exceptions flowhost raises: one root, each class's docstring is its default message."""

from __future__ import annotations

from typing import Any


class FlowhostError(Exception):
    """flowhost failed."""

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.details = details
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the message and details when an error crosses a process boundary.
        return (_rebuild, (type(self), self.message, self.details))


def _rebuild(cls: type[FlowhostError], message: str, details: dict[str, Any]) -> FlowhostError:
    return cls(message, **details)


class ConfigurationError(FlowhostError, ValueError):
    """The flowhost configuration is invalid."""


class DatabaseUnavailableError(FlowhostError):
    """The database cannot be reached."""


class DatabaseError(FlowhostError):
    """The database rejected an operation."""


class MigrationError(FlowhostError):
    """The flowhost schema could not be migrated."""


class FlowNotFoundError(FlowhostError, LookupError):
    """No flow with that name is defined."""


class RunNotFoundError(FlowhostError, LookupError):
    """No run with that id exists."""


class StepNotFoundError(FlowhostError, LookupError):
    """No step with that name in the run's flow."""


class RunStateError(FlowhostError):
    """The run is not in a state that allows this."""


class InvalidInputError(FlowhostError, ValueError):
    """The input is not valid."""


class FlowDefinitionError(FlowhostError, ValueError):
    """A flow definition is invalid."""


class DiscoveryError(FlowhostError):
    """The step functions could not be discovered."""


class HookFailedError(FlowhostError):
    """An await hook failed."""

    @property
    def error(self) -> dict[str, Any]:
        """`{type, message, stack}` of the failure, as a step's error is recorded."""
        error = self.details.get("error")
        return error if isinstance(error, dict) else {"type": "Error", "message": self.message}


class CronSyntaxError(FlowhostError, ValueError):
    """The cron expression is invalid."""

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str = "expression",
        token: str = "",
        expression: str = "",
        **details: Any,
    ) -> None:
        super().__init__(message, field=field, token=token, expression=expression, **details)
        self.field = field
        """The field at fault: ``"second"``, ``"minute"``, ``"hour"``, ``"day-of-month"``,
        ``"month"``, ``"day-of-week"``, or ``"expression"`` for the expression as a whole."""
        self.token = token
        """The offending item of the field (or the field, or the whole expression)."""
        self.expression = expression
        """The expression as given."""


class PatternError(FlowhostError, ValueError):
    """The trigger pattern is invalid."""


class EventNameError(FlowhostError, ValueError):
    """The name cannot be matched against trigger patterns."""


class WebhookVerificationError(FlowhostError):
    """The webhook request could not be verified."""

    def __init__(
        self, message: str | None = None, *, reason: str = "bad_signature", **details: Any
    ) -> None:
        super().__init__(message, reason=reason, **details)
        self.reason = reason
        """A short machine-readable code (docs/webhooks.md lists them), e.g. ``"bad_signature"``,
        ``"missing_signature"``, ``"timestamp_out_of_tolerance"``, ``"ip_not_allowed"``."""

    @property
    def status(self) -> int:
        """The HTTP status to answer with: 403 when the source address is refused (or unknown),
        401 when the credentials or signature are."""
        return 403 if self.reason in ("ip_not_allowed", "unknown_client") else 401

    @property
    def challenge(self) -> str | None:
        """The ``WWW-Authenticate`` value a 401 should carry, for the schemes that define one."""
        value = self.details.get("challenge")
        return value if isinstance(value, str) else None


class CloudEventError(FlowhostError, ValueError):
    """The message is not a valid CloudEvent."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int = 400,
        attribute: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, status=status, attribute=attribute, **details)
        self.status = status
        """The HTTP status to answer with: 415 when the content type names an event format
        flowhost does not read, 400 for everything else."""
        self.attribute = attribute
        """The attribute (or ``data``, or a header name) at fault, when one is."""


# -- triggers (docs/triggers.md). Each maps to one HTTP status: TriggerNotFoundError and
# SubscriptionNotFoundError 404, TriggerConflictError and TriggerRetiredError 409,
# TriggerConfigError and TriggerInputError 422 (with `errors`: [{pointer, message}]).


class TriggerNotFoundError(FlowhostError, LookupError):
    """No trigger with that name exists."""


class SubscriptionNotFoundError(FlowhostError, LookupError):
    """The flow is not subscribed to that trigger."""


class TriggerConflictError(FlowhostError):
    """The trigger changed meanwhile, or the change conflicts with its current state."""


class TriggerRetiredError(FlowhostError):
    """The trigger is retired: it does not fire."""


class _FieldErrors(InvalidInputError):
    @property
    def errors(self) -> list[dict[str, str]]:
        """Where the value is wrong: `[{"pointer": JSON Pointer, "message": ...}]`."""
        errors = self.details.get("errors")
        return list(errors) if isinstance(errors, list | tuple) else []


class TriggerConfigError(_FieldErrors):
    """The trigger's declaration is invalid."""


class TriggerInputError(_FieldErrors):
    """The input does not match the trigger's schema."""


class ConnectorNotFoundError(FlowhostError, LookupError):
    """No connector of that name: neither configured nor used by a live host."""


class BrokerError(FlowhostError):
    """A broker connection failed (refused, lost, or a broker-side error); the connector
    reconnects with backoff."""


class BrokerSupportMissingError(FlowhostError, ImportError):
    """The broker client libraries are not installed: pip install 'flowhost[brokers]'."""
