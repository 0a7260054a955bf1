"""Exceptions a step function raises or meets; all cross process boundaries intact."""

from __future__ import annotations

import math
from typing import Any


class WorkerError(Exception):
    """A flowhost step function failed."""


class StepConfigError(WorkerError, ValueError):
    """A @step declaration is invalid; the message names the field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self),), {"field": self.field})


class JobEndedError(WorkerError, RuntimeError):
    """The job this context belongs to has ended; a task the step left running cannot use it."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self),))


class ActionError(WorkerError):
    """An action out of the step (`ctx.publish.*`, `ctx.http`) failed: the broker or the server
    could not be reached, did not confirm, or timed out. The message says which; it never holds
    a secret. Raised alike in a child and in the host."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self),))


class RetryRequested(WorkerError):
    """The step asks to be tried again after `delay` seconds.

    The attempt counts against the step's `attempts`; the delay replaces the backoff.
    Same fields as `RetryRequested` in the Node SDK.
    """

    def __init__(self, delay: float = 0.0, reason: str = "") -> None:
        if not isinstance(delay, int | float) or isinstance(delay, bool):
            raise TypeError("RetryRequested delay must be a number of seconds")
        if not math.isfinite(delay) or delay < 0:
            raise ValueError("RetryRequested delay must be a finite number >= 0")
        super().__init__(reason or f"retry requested in {delay}s")
        self.delay = float(delay)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.delay, self.reason))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "RetryRequested", "delay": self.delay, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryRequested:
        return cls(float(data.get("delay", 0.0)), str(data.get("reason", "")))
