"""Stopping one attempt from outside it: its run ended (canceled, failed), or it is no longer
its step's current attempt.

A child's attempt (flowhost.workers.attempt) watches `Cancellation.reason` and escalates: the
protocol's `cancel`, then SIGTERM, then SIGKILL. An in-process attempt runs its handler inside
`with cancellation:`, which cancels the handler's task and turns that into `AttemptCanceled`.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class AttemptCanceled(Exception):
    """The attempt was stopped because its run ended; its outcome is not recorded."""


class Cancellation:
    """One attempt's stop request. `cancel()` is a no-op once the attempt's handler ended
    (`close()`), so that a request racing the handler's end never discards a result."""

    __slots__ = ("_cancelling", "_closed", "_interrupted", "_task", "reason")

    def __init__(self) -> None:
        self.reason: str | None = None
        self._closed = False
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._interrupted = False

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def cancel(self, reason: str) -> None:
        if self._closed or self.reason is not None:
            return
        self.reason = reason
        if self._task is not None:
            self._interrupted = True
            self._task.cancel(f"cancelled: {reason}")

    def close(self) -> str | None:
        """The handler ended: later requests change nothing. Returns why it was stopped, if it
        was."""
        self._closed = True
        return self.reason

    # -- in-process attempts: interrupt the task that runs the handler -------------------------

    def __enter__(self) -> Cancellation:
        task = asyncio.current_task()
        assert task is not None, "a Cancellation interrupts the running task"
        if self.reason is not None:
            raise AttemptCanceled(self.reason)
        self._task = task
        self._cancelling = task.cancelling()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # As asyncio.timeout does: the CancelledError is ours only if nobody else (a timeout,
        # the host stopping) cancelled the task as well.
        task, self._task = self._task, None
        if not self._interrupted or task is None:
            return
        if (
            task.uncancel() <= self._cancelling
            and exc_type is not None
            and issubclass(exc_type, asyncio.CancelledError)
        ):
            raise AttemptCanceled(self.reason) from exc
