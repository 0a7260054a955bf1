"""Keeping each schedule's row (`flowhost.schedules`) in step with its trigger.

The trigger registry (flowhost.triggers.registry) changes triggers however they change: the
functions' configs at host start, the triggers API, a retirement. It knows nothing of
schedules: each change adds one to the trigger's version. A schedule's row remembers the
version it was computed from, and schedulers do not fire a row that is behind its trigger: they
bring it up to date first (`reconcile`), when the registry announces a change (NOTIFY
flowhost_triggers), when they start, and at least every half minute. The schedules API
reconciles in the transaction of its own changes.

Bringing a row up to date:
- `enabled` follows the config's `enabled` when that declaration changes (or on the row's
  first computation); otherwise it keeps what enable/disable set at runtime;
- a retired or disabled schedule does not fire (next_fire NULL, its queued fires dropped);
- when the cron or the zone changed, or the schedule fires again after not firing, its next
  planned time is the first one after the change (after the trigger's `updated_at`, and after
  its last planned fire), so that a time already fired is not planned again;
- any other change (policies, payload, texts) leaves the planned time as it is.
"""

from __future__ import annotations

import logging

from flowhost.db.database import Connection
from flowhost.store import schedules as store
from flowhost.store.schedules import ScheduleState
from flowhost.triggers.schedule_config import ScheduleConfig, next_fire_after

logger = logging.getLogger(__name__)


async def reconcile(conn: Connection, name: str) -> ScheduleState | None:
    """Bring the schedule `name` up to date with its trigger; call inside a transaction. Locks
    the schedule's row. None: `name` is no schedule trigger."""
    state = await store.schedule_for_update(conn, name)
    if state is None or state.trigger_version == state.version:
        return state
    try:
        config = ScheduleConfig.from_config(state.config)
    except ValueError as exc:
        # Registered before schedules were checked, or written around the registry.
        logger.warning("schedule %s has an invalid config (%s): it does not fire", name, exc)
        await store.write_schedule(
            conn,
            name,
            trigger_version=state.version,
            cron=None,
            timezone=None,
            declared_enabled=None,
            enabled=state.enabled,
            next_fire=None,
            queued=(),
        )
        return await store.schedule_for_update(conn, name)
    enabled = config.enabled if state.declared_enabled != config.enabled else state.enabled
    timing_changed = (state.cron, state.timezone) != (config.cron, config.timezone)
    next_fire = state.next_fire
    queued = state.queued
    if state.status == "retired" or not enabled:
        next_fire, queued = None, ()
    elif next_fire is None or timing_changed:
        since = state.updated_at
        if state.last_planned_at is not None and state.last_planned_at > since:
            since = state.last_planned_at
        next_fire = next_fire_after(config, since)
    await store.write_schedule(
        conn,
        name,
        trigger_version=state.version,
        cron=config.cron,
        timezone=config.timezone,
        declared_enabled=config.enabled,
        enabled=enabled,
        next_fire=next_fire,
        queued=queued,
    )
    return await store.schedule_for_update(conn, name)


async def names_to_reconcile(conn: Connection) -> list[str]:
    """Schedules whose rows are missing or behind their triggers (rows of triggers that are no
    schedules any more are dropped)."""
    return await store.names_to_reconcile(conn)
