"""What a queued job carries: which attempt of which step of which run. No PgQueuer here."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

ENTRYPOINT_PREFIX = "flow:"


class RequeueJob(Exception):
    """Raised by a job handler: put the job back, to be offered again after `delay` seconds."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


@dataclasses.dataclass(frozen=True, slots=True)
class StepJob:
    run_id: uuid.UUID
    flow: str
    step: str
    attempt: int
    # Seconds to wait before the job may run (retry backoff).
    delay: float = 0.0

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


def entrypoint_for(flow: str) -> str:
    return f"{ENTRYPOINT_PREFIX}{flow}"
