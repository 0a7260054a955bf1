"""How an attempt that ran in a child failed, as recorded in the step's error."""

from __future__ import annotations

from typing import Any

from flowhost.store.json_data import storable_text


class ChildFailure(Exception):
    """An attempt that failed in a child process: the handler raised there, or the child
    crashed, timed out, ran out of memory or CPU time, or broke the protocol."""

    def __init__(
        self, type_: str, message: str, stack: str = "", retry_delay: float | None = None
    ) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.stack = stack
        self.retry_delay = retry_delay

    @classmethod
    def from_data(cls, data: Any, fallback: str) -> ChildFailure:
        """From the `data` of a -32050/-32053 error; anything malformed is described, not
        trusted."""
        if not isinstance(data, dict):
            return cls("Error", fallback)
        delay = data.get("retry_delay")
        retry_delay = (
            float(delay)
            if isinstance(delay, int | float) and not isinstance(delay, bool) and 0 <= delay < 1e9
            else None
        )
        return cls(
            str(data.get("type") or "Error")[:200],
            str(data.get("message") or fallback),
            str(data.get("stack") or ""),
            retry_delay,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": storable_text(self.message),
            "stack": storable_text(self.stack),
        }


def crashed(reason: str, output_tail: str = "") -> ChildFailure:
    return ChildFailure("WorkerCrashed", f"the worker process failed: {reason}", output_tail)


def timed_out(step: str, seconds: float) -> ChildFailure:
    return ChildFailure("TimeoutError", f"step {step!r} timed out after {seconds:g}s")


def canceled(reason: str) -> ChildFailure:
    return ChildFailure("AttemptCanceled", f"the attempt was stopped: {reason}")


def memory_exceeded(limit_mb: int, output_tail: str = "") -> ChildFailure:
    return ChildFailure(
        "MemoryLimitExceeded", f"memory limit exceeded ({limit_mb} MiB)", output_tail
    )


def cpu_exceeded(seconds: float) -> ChildFailure:
    return ChildFailure("CPULimitExceeded", f"CPU time limit exceeded ({seconds:g}s)")


def unresponsive(silent_for: float) -> ChildFailure:
    return ChildFailure(
        "WorkerUnresponsive",
        f"worker stopped responding (silent for {silent_for:.1f}s; a handler that blocks its "
        "event loop this long is taken for hung)",
    )


def emit_refused(name: str, reason: str) -> ChildFailure:
    return ChildFailure(
        "EmitRefused",
        f"the host refused ctx.emit({name!r}): {reason} (a child does not wait for its emits to "
        "be accepted, so the attempt fails instead)",
    )


def protocol_failure(message: str) -> ChildFailure:
    return ChildFailure("ProtocolError", f"protocol error: {message}")
