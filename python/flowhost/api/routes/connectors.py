"""`/api/connectors`: the broker connectors (docs/connectors.md), each with the state of every
host's connections to it (consuming and publishing), their last errors (never credentials) and
who holds an exclusive connector's lease. Read only: connectors are configured in
flowhost.toml."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flowhost.api.connector_models import ConnectorInfo, ConnectorPage
from flowhost.api.routes.common import connection, documented, project_of
from flowhost.errors import ConnectorNotFoundError
from flowhost.store import connectors as store
from flowhost.store.connectors import ConnectorState

router = APIRouter(prefix="/api/connectors", tags=["connectors"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: documented("no connector of that name")}


async def _connectors(request: Request) -> list[ConnectorInfo]:
    project = project_of(request)
    async with connection(request) as conn:
        states = await store.read_states(conn, stale_after=project.settings.host_stale_after)
        leases = await store.leases(conn)
    configured = {c.name: c for c in project.settings.connectors}
    by_name: dict[str, list[ConnectorState]] = {}
    for state in states:
        by_name.setdefault(state.connector, []).append(state)
    found = []
    for name in sorted(set(configured) | set(by_name)):
        config = configured.get(name)
        rows = by_name.get(name, [])
        lease = leases.get(name)
        described = (
            {
                "type": config.type,
                "address": config.address,
                "tls": config.tls,
                "username": config.username,
                "passwordEnv": config.password_env,
            }
            if config is not None
            else {"type": rows[0].type, "address": rows[0].address}
        )
        found.append(
            ConnectorInfo.model_validate(
                {
                    "name": name,
                    "configured": config is not None,
                    "tls": None,
                    "username": None,
                    "passwordEnv": None,
                    **described,
                    "lease": None
                    if lease is None
                    else {
                        "hostId": str(lease["host_id"]),
                        "acquiredAt": lease["acquired_at"],
                        "expiresAt": lease["expires_at"],
                        "live": bool(lease["live"]),
                    },
                    "connections": [state.to_json() for state in rows],
                }
            )
        )
    return found


@router.get("", response_model=ConnectorPage, summary="Broker connectors and their connections")
async def list_connectors(request: Request) -> ConnectorPage:
    return ConnectorPage(items=await _connectors(request))


@router.get(
    "/{name}",
    response_model=ConnectorInfo,
    summary="A broker connector and its connections",
    responses=NOT_FOUND,
)
async def get_connector(request: Request, name: str) -> ConnectorInfo:
    for connector in await _connectors(request):
        if connector.name == name:
            return connector
    raise ConnectorNotFoundError(
        f"no connector {name!r}: neither configured nor used by a live host"
    )
