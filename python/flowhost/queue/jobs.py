"""What a queued job carries: which attempt of which step of which run. No PgQueuer here."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

ENTRYPOINT_PREFIX = "flow:"


class RequeueJob(Exception):
    """Raised by a job handler: put the job back, to be offered again after `delay` seconds.

    `expected` marks a requeue that is part of normal operation (a delayed start pushed back),
    which is not worth a warning."""

    def __init__(self, reason: str, delay: float, *, expected: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        self.expected = expected


@dataclasses.dataclass(frozen=True, slots=True)
class StepJob:
    run_id: uuid.UUID
    flow: str
    step: str
    attempt: int
    # Seconds to wait before the job may run (retry backoff).
    delay: float = 0.0
    # The run's priority: the queue hands out higher priorities first. Not in the payload.
    priority: int = 0

    @property
    def entrypoint(self) -> str:
        """One queue entrypoint per flow: a host only picks jobs of flows it serves."""
        return entrypoint_for(self.flow)

    @property
    def dedupe_key(self) -> str:
        return f"{self.run_id}:{self.step}:{self.attempt}"

    def encode(self) -> bytes:
        return json.dumps(
            {
                "run": str(self.run_id),
                "flow": self.flow,
                "step": self.step,
                "attempt": self.attempt,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, payload: bytes | None) -> StepJob:
        """Parse a job payload; raises ValueError if it is not one flowhost wrote."""
        try:
            data: Any = json.loads(payload or b"")
            return cls(
                run_id=uuid.UUID(data["run"]),
                flow=str(data["flow"]),
                step=str(data["step"]),
                attempt=int(data["attempt"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a flowhost step job payload: {payload!r:.200}") from exc


@dataclasses.dataclass(frozen=True, slots=True)
class StartJob:
    """Start a delayed run once its time came: through its flow's limits, like any start."""

    run_id: uuid.UUID
    flow: str
    delay: float = 0.0
    priority: int = 0
    # Start jobs of one run, numbered: one that fires before a debounce's pushed-back time
    # enqueues the next (a new job wakes the queue's consumers; a requeued one may not).
    round: int = 0

    @property
    def entrypoint(self) -> str:
        return entrypoint_for(self.flow)

    @property
    def dedupe_key(self) -> str:
        return f"{self.run_id}:start:{self.round}"

    def encode(self) -> bytes:
        return json.dumps(
            {"start": str(self.run_id), "flow": self.flow, "round": self.round},
            separators=(",", ":"),
        ).encode()


QueueJob = StepJob | StartJob


def decode_job(payload: bytes | None) -> QueueJob:
    """A step job or a start job; ValueError if the payload is not one flowhost wrote."""
    try:
        data: Any = json.loads(payload or b"")
        if isinstance(data, dict) and "start" in data:
            return StartJob(
                run_id=uuid.UUID(data["start"]),
                flow=str(data["flow"]),
                round=int(data.get("round", 0)),
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a flowhost step job payload: {payload!r:.200}") from exc
    return StepJob.decode(payload)


def entrypoint_for(flow: str) -> str:
    return f"{ENTRYPOINT_PREFIX}{flow}"
