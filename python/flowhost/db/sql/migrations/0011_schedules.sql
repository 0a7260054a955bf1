-- 0011: schedules (docs/schedules.md). A row per schedule trigger: when it fires
-- next, the fires waiting behind its live runs, and its figures. Every host's scheduler claims
-- due rows with FOR UPDATE SKIP LOCKED and fires them in the transaction that moves next_fire
-- on, so each planned time fires once, whatever the number of hosts.
CREATE TABLE flowhost.schedules (
    trigger text PRIMARY KEY REFERENCES flowhost.triggers (name) ON DELETE CASCADE,
    -- The trigger version this row was computed from (0: never). A row behind its trigger
    -- does not fire until a scheduler has brought it up to date.
    trigger_version integer NOT NULL DEFAULT 0,
    -- What next_fire was computed from: the config's cron and zone, and its declared `enabled`
    -- (`enabled` follows the declaration when the declaration changes; enable and disable
    -- change it at runtime).
    cron text,
    timezone text,
    declared_enabled boolean,
    enabled boolean NOT NULL DEFAULT false,
    -- The earliest planned time not handled yet; NULL: it does not fire (disabled, retired, or
    -- no fire time left).
    next_fire timestamptz,
    -- Planned times waiting for the schedule's live runs to end (overlap "queue"), oldest first.
    queued timestamptz[] NOT NULL DEFAULT '{}',
    -- Runs the schedule started that were live when it last looked (what overlap looks at).
    live_runs uuid[] NOT NULL DEFAULT '{}',
    -- Figures, a projection of the trigger stream. Lag: from the planned time to the fire, of
    -- the fires that were not caught up or queued (those are late on purpose).
    last_planned_at timestamptz,
    last_fired_at timestamptz,
    last_lag_ms double precision,
    lag_fires bigint NOT NULL DEFAULT 0,
    lag_total_ms double precision NOT NULL DEFAULT 0,
    lag_max_ms double precision NOT NULL DEFAULT 0,
    -- Planned times that did not fire: overlap "skip" (or a full queue), dropped by the
    -- catch-up policy, or a fire that failed.
    skipped bigint NOT NULL DEFAULT 0,
    missed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX schedules_next_fire_idx ON flowhost.schedules (next_fire)
    WHERE next_fire IS NOT NULL;
CREATE INDEX schedules_queued_idx ON flowhost.schedules (trigger)
    WHERE cardinality(queued) > 0;
