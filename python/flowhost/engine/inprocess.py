"""The in-process runtime: a step's `ctx` backed directly by Postgres, inside the host."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from psycopg.types.json import Jsonb

from flowhost.db.database import Database
from flowhost.db.queries import QUERIES
from flowhost.engine.orchestrator import AttemptRecord
from flowhost.store.events import LOG, NewEvent
from flowhost.store.json_data import as_json, as_loose_json

logger = logging.getLogger("flowhost.steps")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class InProcessBackend:
    """Implements flowhost_worker.ContextBackend for one step attempt."""

    def __init__(
        self,
        database: Database,
        *,
        run_id: uuid.UUID,
        flow: str,
        step: str,
        attempt: int,
        emits: tuple[str, ...],
        record: AttemptRecord,
    ) -> None:
        self._database = database
        self._run_id = run_id
        self._flow = flow
        self._step = step
        self._attempt = attempt
        self._emits = emits
        self._record = record

    def _params(self, key: str) -> dict[str, Any]:
        return {"run_id": self._run_id, "step": self._step, "attempt": self._attempt, "key": key}

    async def state_get(self, key: str) -> tuple[bool, Any]:
        async with self._database.connection() as conn:
            row = await (await conn.execute(QUERIES["state_get"], self._params(key))).fetchone()
        return (False, None) if row is None else (True, row["value"])

    async def state_set(self, key: str, value: Any) -> None:
        data = as_json(value, f"state value for {key!r}")
        async with self._database.connection() as conn:
            await conn.execute(QUERIES["state_set"], {**self._params(key), "value": Jsonb(data)})

    async def state_delete(self, key: str) -> None:
        async with self._database.connection() as conn:
            await conn.execute(QUERIES["state_delete"], self._params(key))

    async def emit(self, name: str, payload: Any) -> None:
        if name not in self._emits:
            declared = ", ".join(self._emits) or "nothing"
            raise ValueError(f"step {self._step!r} emits {name!r} but declares emits=[{declared}]")
        self._record.emits.append((name, as_json(payload, f"payload of {name!r}")))

    def log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        data = as_loose_json({"level": level, "message": message, "fields": fields})
        self._record.logs.append(NewEvent(self._run_id, LOG, data, self._step, self._attempt))
        logger.log(
            _LEVELS.get(level, logging.INFO),
            "%s/%s: %s %s",
            self._flow,
            self._step,
            message,
            fields or "",
            extra={"run_id": str(self._run_id)},
        )
