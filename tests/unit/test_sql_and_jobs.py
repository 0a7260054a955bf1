"""The SQL files load; job payloads round-trip and reject what flowhost did not write."""

from __future__ import annotations

import uuid

import pytest

from flowhost.db.migrations import available_migrations, migrations_sql
from flowhost.db.queries import QUERIES
from flowhost.queue.jobs import StepJob


def test_every_query_block_has_a_statement() -> None:
    assert {"claim_steps", "start_runs", "lock_runs", "complete_steps", "record_progress"} <= set(
        QUERIES
    )
    assert all(text and not text.startswith("-- name") for text in QUERIES.values())


def test_migrations_are_numbered_without_gaps() -> None:
    migrations = available_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert "CREATE TABLE flowhost.events" in migrations_sql()


def test_step_job_round_trip() -> None:
    job = StepJob(uuid.uuid4(), "orders", "ship", 2)
    assert StepJob.decode(job.encode()) == job
    assert job.entrypoint == "flow:orders"
    assert job.dedupe_key.endswith(":ship:2")


@pytest.mark.parametrize("payload", [None, b"", b"[]", b'{"run": "x"}', b"\xff"])
def test_foreign_payloads_are_rejected(payload: bytes | None) -> None:
    with pytest.raises(ValueError, match="not a flowhost step job"):
        StepJob.decode(payload)
