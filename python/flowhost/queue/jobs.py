"""What a queued job carries. No PgQueuer here.

Step jobs (which attempt of which step of which run), start jobs (a delayed run whose time
came), and the await jobs beside them: running an await's hook, releasing a step whose await
after it resolved, publishing an emitted event to the awaits waiting for it. A payload names its
kind; step and start jobs' payloads have none.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from flowhost.db.json_codec import dumps

ENTRYPOINT_PREFIX = "flow:"
# Jobs any host can run, whatever flows it serves (they only touch the database).
AWAITS_ENTRYPOINT = "flowhost:awaits"


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
        return dumps(
            {"run": str(self.run_id), "flow": self.flow, "step": self.step, "attempt": self.attempt}
        )

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
        return dumps({"start": str(self.run_id), "flow": self.flow, "round": self.round})


def entrypoint_for(flow: str) -> str:
    return f"{ENTRYPOINT_PREFIX}{flow}"


def _encode(data: dict[str, Any]) -> bytes:
    return dumps(data)


@dataclasses.dataclass(frozen=True, slots=True)
class HookJob:
    """Run an await's hook function (on a host serving the flow: the function is its code)."""

    run_id: uuid.UUID
    flow: str
    step: str
    position: str
    # "register", "resolve" or "timeout".
    kind: str
    function: str
    registration: int
    # The hook's input, but for the webhook URL (a secret: the runner adds it from the await).
    data: dict[str, Any]
    attempt: int = 1
    delay: float = 0.0
    priority: int = 0

    @property
    def entrypoint(self) -> str:
        return entrypoint_for(self.flow)

    @property
    def dedupe_key(self) -> str:
        return (
            f"hook:{self.run_id}:{self.step}:{self.position}:{self.kind}:"
            f"{self.registration}:{self.attempt}"
        )

    def encode(self) -> bytes:
        return _encode(
            {
                "kind": "hook",
                "run": str(self.run_id),
                "flow": self.flow,
                "step": self.step,
                "position": self.position,
                "hook": self.kind,
                "function": self.function,
                "registration": self.registration,
                "data": self.data,
                "attempt": self.attempt,
            }
        )

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> HookJob:
        return cls(
            run_id=uuid.UUID(data["run"]),
            flow=str(data["flow"]),
            step=str(data["step"]),
            position=str(data["position"]),
            kind=str(data["hook"]),
            function=str(data["function"]),
            registration=int(data["registration"]),
            data=dict(data["data"]),
            attempt=int(data["attempt"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ReleaseJob:
    """An await after a step resolved where the flow's definition was not at hand: a host
    serving the flow completes the step, counts its held emits and schedules what follows."""

    run_id: uuid.UUID
    flow: str
    step: str
    delay: float = 0.0
    priority: int = 0

    @property
    def entrypoint(self) -> str:
        return entrypoint_for(self.flow)

    @property
    def dedupe_key(self) -> str:
        return f"release:{self.run_id}:{self.step}"

    def encode(self) -> bytes:
        return _encode(
            {"kind": "release", "run": str(self.run_id), "flow": self.flow, "step": self.step}
        )

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ReleaseJob:
        return cls(uuid.UUID(data["run"]), str(data["flow"]), str(data["step"]))


@dataclasses.dataclass(frozen=True, slots=True)
class PublishJob:
    """An event a step emitted that waiting awaits (found when it was emitted) wait for: any
    host resolves them, each run in a transaction of its own."""

    name: str
    payload: Any
    # (await id, run id) of each await found waiting for it.
    awaits: tuple[tuple[int, uuid.UUID], ...]
    delay: float = 0.0
    priority: int = 0

    @property
    def entrypoint(self) -> str:
        return AWAITS_ENTRYPOINT

    @property
    def dedupe_key(self) -> None:
        return None

    def encode(self) -> bytes:
        return _encode(
            {
                "kind": "publish",
                "name": self.name,
                "payload": self.payload,
                "awaits": [[await_id, str(run_id)] for await_id, run_id in self.awaits],
            }
        )

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PublishJob:
        return cls(
            str(data["name"]),
            data["payload"],
            tuple((int(await_id), uuid.UUID(run_id)) for await_id, run_id in data["awaits"]),
        )


QueueJob = StepJob | StartJob | HookJob | ReleaseJob | PublishJob


def decode_job(payload: bytes | None) -> QueueJob:
    """Parse any job payload flowhost writes; raises ValueError otherwise."""
    try:
        data: Any = json.loads(payload or b"")
        kind = data.get("kind") if isinstance(data, dict) else None
    except ValueError as exc:
        raise ValueError(f"not a flowhost job payload: {payload!r:.200}") from exc
    try:
        if kind is None and isinstance(data, dict) and "start" in data:
            # Written by Python and by flowhost.fc_enqueue (migration 0005) alike.
            return StartJob(
                run_id=uuid.UUID(data["start"]),
                flow=str(data["flow"]),
                round=int(data.get("round", 0)),
            )
        if kind is None:
            return StepJob.decode(payload)
        if kind == "hook":
            return HookJob.from_data(data)
        if kind == "release":
            return ReleaseJob.from_data(data)
        if kind == "publish":
            return PublishJob.from_data(data)
        raise ValueError(f"unknown job kind {kind!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a flowhost job payload: {payload!r:.200}") from exc
