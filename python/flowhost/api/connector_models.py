"""The bodies of `/api/connectors` (flowhost.api.routes.connectors): each broker connector, the
state of every host's connections to it, and who holds its lease (docs/connectors.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ConnectionState = Literal["connecting", "connected", "backing_off", "standby", "stopped"]


class ConnectorConnection(BaseModel):
    """One host's connection to the connector, as that host last wrote it."""

    hostId: str
    hostname: str | None
    pid: int | None
    hostAlive: bool | None = Field(description="false: the host stopped heartbeating (killed)")
    role: Literal["consume", "publish"] = Field(
        description="consume: its triggers' connection; publish: its steps' ctx.publish"
    )
    type: str
    state: ConnectionState
    address: str = Field(description="scheme://host:port, never credentials")
    exclusive: bool
    holdsLease: bool | None
    triggers: list[str]
    attempt: int = Field(description="failed connects in a row (backing_off)")
    nextAttemptAt: datetime | None
    lastError: str | None = Field(description="the last connection error, without secrets")
    lastErrorAt: datetime | None
    connectedAt: datetime | None
    messages: int = Field(description="messages taken (consume) or published (publish)")
    updatedAt: datetime | None


class ConnectorLease(BaseModel):
    """The lease of an exclusive connector: one host at a time holds its connection."""

    hostId: str
    acquiredAt: datetime
    expiresAt: datetime
    live: bool = Field(description="false: it lapsed; any host may take it")


class ConnectorInfo(BaseModel):
    name: str
    type: Literal["mqtt", "amqp"]
    configured: bool = Field(
        description="whether this API's flowhost.toml declares it (else known from hosts' states)"
    )
    address: str | None
    tls: bool | None
    username: str | None
    passwordEnv: str | None = Field(description="the variable holding the password, not its value")
    lease: ConnectorLease | None
    connections: list[ConnectorConnection]


class ConnectorPage(BaseModel):
    items: list[ConnectorInfo]
