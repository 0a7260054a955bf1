"""`/healthz` (the process answers) and `/readyz` (the database answers and its schema is
migrated): open to anyone, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request

from flowhost.api.models import Health, Problem, Readiness
from flowhost.db.migrations import migration_status
from flowhost.errors import DatabaseUnavailableError
from flowhost.project import Project

# Longer than this and the database counts as down: a probe must answer in time.
READY_TIMEOUT = 3.0

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database answers and every migration is applied",
    responses={503: {"model": Problem, "description": "not ready"}},
)
async def readyz(request: Request) -> Readiness:
    project: Project = request.app.state.project
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with project.database.connection(timeout=READY_TIMEOUT) as conn:
                migrations = await migration_status(conn)
    except (TimeoutError, DatabaseUnavailableError):
        raise HTTPException(
            503, "the database cannot be reached", headers={"Retry-After": "1"}
        ) from None
    pending = [f"{m.version:04d}_{m.name}" for m in migrations if m.applied_at is None]
    if pending:
        raise HTTPException(
            503,
            f"migrations are pending: {', '.join(pending)} (flowhost db migrate)",
            headers={"Retry-After": "5"},
        )
    return Readiness(status="ready", schema_version=max(m.version for m in migrations))
