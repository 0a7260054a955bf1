"""Connectors in Postgres: connection states per host, leases of exclusive connectors, failure
counts of messages that did not fire. Functions run on a connection the caller owns."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flowhost.db.database import Connection
from flowhost.db.queries import QUERIES
from flowhost.store.json_data import storable_text

STATES = ("connecting", "connected", "backing_off", "standby", "stopped")


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectorState:
    """One host's connection to one broker connector."""

    connector: str
    host_id: uuid.UUID
    type: str
    state: str
    address: str
    exclusive: bool = False
    triggers: tuple[str, ...] = ()
    attempt: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    connected_at: datetime | None = None
    messages: int = 0
    updated_at: datetime | None = None
    # "consume" (the triggers' connection) or "publish" (the steps' ctx.publish connection).
    role: str = "consume"
    # Read back only: whether the host is alive, where it runs, and whether it holds the lease.
    host_alive: bool | None = None
    hostname: str | None = None
    pid: int | None = None
    holds_lease: bool | None = None

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "connector": self.connector,
            "hostId": str(self.host_id),
            "hostname": self.hostname,
            "pid": self.pid,
            "hostAlive": self.host_alive,
            "role": self.role,
            "type": self.type,
            "state": self.state,
            "address": self.address,
            "exclusive": self.exclusive,
            "holdsLease": self.holds_lease,
            "triggers": list(self.triggers),
            "attempt": self.attempt,
            "nextAttemptAt": iso(self.next_attempt_at),
            "lastError": self.last_error,
            "lastErrorAt": iso(self.last_error_at),
            "connectedAt": iso(self.connected_at),
            "messages": self.messages,
            "updatedAt": iso(self.updated_at),
        }


async def write_state(conn: Connection, state: ConnectorState) -> None:
    await conn.execute(
        QUERIES["upsert_connector_state"],
        {
            "connector": state.connector,
            "host_id": state.host_id,
            "role": state.role,
            "type": state.type,
            "state": state.state,
            "address": state.address,
            "exclusive": state.exclusive,
            "triggers": list(state.triggers),
            "attempt": state.attempt,
            "next_attempt_at": state.next_attempt_at,
            "last_error": None if state.last_error is None else storable_text(state.last_error),
            "last_error_at": state.last_error_at,
            "connected_at": state.connected_at,
            "messages": state.messages,
        },
    )


async def delete_states(
    conn: Connection,
    host_id: uuid.UUID,
    connector: str | None = None,
    *,
    role: str | None = None,
) -> None:
    """Delete this host's state rows (of one connector, of one role, or all)."""
    await conn.execute(
        QUERIES["delete_connector_state"],
        {"host_id": host_id, "connector": connector, "role": role},
    )


async def forget_dead_states(conn: Connection, dead_after: float) -> None:
    await conn.execute(QUERIES["forget_dead_connector_states"], {"dead_after": dead_after})


async def read_states(
    conn: Connection, *, connector: str | None = None, stale_after: float = 6.0
) -> list[ConnectorState]:
    rows = await (
        await conn.execute(
            QUERIES["connector_states"], {"connector": connector, "stale_after": stale_after}
        )
    ).fetchall()
    return [
        ConnectorState(
            connector=row["connector"],
            host_id=row["host_id"],
            role=row["role"],
            type=row["type"],
            state=row["state"],
            address=row["address"],
            exclusive=row["exclusive"],
            triggers=tuple(row["triggers"]),
            attempt=row["attempt"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
            last_error_at=row["last_error_at"],
            connected_at=row["connected_at"],
            messages=int(row["messages"]),
            updated_at=row["updated_at"],
            host_alive=bool(row["host_alive"]),
            hostname=row["hostname"],
            pid=row["pid"],
            holds_lease=bool(row["holds_lease"]),
        )
        for row in rows
    ]


async def take_lease(conn: Connection, connector: str, host_id: uuid.UUID, ttl: float) -> bool:
    """Take or renew the lease; True when this host holds it (for `ttl` seconds from now)."""
    cursor = await conn.execute(
        QUERIES["take_connector_lease"], {"connector": connector, "host_id": host_id, "ttl": ttl}
    )
    return await cursor.fetchone() is not None


async def release_lease(conn: Connection, connector: str, host_id: uuid.UUID) -> None:
    await conn.execute(
        QUERIES["release_connector_lease"], {"connector": connector, "host_id": host_id}
    )


async def leases(conn: Connection) -> dict[str, dict[str, Any]]:
    """Connector -> its lease row (`host_id`, `acquired_at`, `expires_at`, `live`)."""
    rows = await (await conn.execute(QUERIES["connector_leases"])).fetchall()
    return {row["connector"]: dict(row) for row in rows}


async def lease_of(conn: Connection, connector: str) -> dict[str, Any] | None:
    row = await (
        await conn.execute(QUERIES["connector_lease"], {"connector": connector})
    ).fetchone()
    return None if row is None else dict(row)


async def expire_delivery_key(conn: Connection, trigger: str, key: str, window: float) -> bool:
    """Forget the key if it is older than `window` seconds; True if it was."""
    cursor = await conn.execute(
        QUERIES["expire_delivery_key"], {"trigger": trigger, "key": key, "window": window}
    )
    return cursor.rowcount > 0


async def count_failure(conn: Connection, trigger: str, key: str, error: str) -> int:
    """Count one more failed fire of the message `key` for `trigger`; returns the count."""
    row = await (
        await conn.execute(
            QUERIES["count_connector_failure"],
            {"trigger": trigger, "key": key, "error": storable_text(error)},
        )
    ).fetchone()
    assert row is not None
    return int(row["failures"])


async def clear_failures(conn: Connection, triggers: Sequence[str], key: str) -> None:
    await conn.execute(
        QUERIES["clear_connector_failures"], {"triggers": list(triggers), "key": key}
    )


async def failures_of(conn: Connection, trigger: str) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(QUERIES["connector_failures_of"], {"trigger": trigger})
    ).fetchall()
    return [dict(row) for row in rows]


async def broker_triggers(conn: Connection) -> tuple[int, list[dict[str, Any]]]:
    """(registry generation, [{name, type, config}] of the active mqtt and amqp triggers)."""
    row = await (await conn.execute(QUERIES["broker_triggers"])).fetchone()
    assert row is not None
    return int(row["generation"]), list(row["triggers"])
