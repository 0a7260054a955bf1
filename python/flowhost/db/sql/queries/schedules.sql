-- Schedules: the rows hosts' schedulers claim, fire and move on (flowhost.triggers.scheduler),
-- and what the schedules API reads and changes (flowhost.triggers.schedule_service).

-- name: schedules_to_reconcile
-- Schedule triggers whose row is missing or behind the trigger's version.
SELECT t.name
FROM flowhost.triggers AS t
LEFT JOIN flowhost.schedules AS s ON s.trigger = t.name
WHERE t.type = 'schedule' AND (s.trigger IS NULL OR s.trigger_version <> t.version)
ORDER BY t.name;

-- name: drop_schedules_of_other_types
-- A trigger whose type changed from schedule to another no longer has a schedule.
DELETE FROM flowhost.schedules AS s
USING flowhost.triggers AS t
WHERE t.name = s.trigger AND t.type <> 'schedule';

-- name: ensure_schedule_row
-- A placeholder (version 0: behind every trigger) that the caller then locks and computes.
INSERT INTO flowhost.schedules (trigger)
SELECT name FROM flowhost.triggers WHERE name = %(name)s AND type = 'schedule'
ON CONFLICT (trigger) DO NOTHING;

-- name: schedule_for_update
-- A schedule and its trigger, the schedule's row locked (the order every writer takes: the
-- schedule's row, then the trigger's).
SELECT s.trigger AS name, s.trigger_version, s.cron, s.timezone, s.declared_enabled, s.enabled,
       s.next_fire, s.queued, s.live_runs, s.last_planned_at,
       t.type, t.status, t.config, t.version, t.updated_at,
       clock_timestamp() AS now
FROM flowhost.schedules AS s
JOIN flowhost.triggers AS t ON t.name = s.trigger AND t.type = 'schedule'
WHERE s.trigger = %(name)s
FOR UPDATE OF s;

-- name: write_schedule
-- The schedule as computed from its trigger (or changed at runtime); schedulers sleeping until
-- another time hear of it at commit.
WITH written AS (
    UPDATE flowhost.schedules
    SET trigger_version = %(trigger_version)s, cron = %(cron)s, timezone = %(timezone)s,
        declared_enabled = %(declared_enabled)s, enabled = %(enabled)s,
        next_fire = %(next_fire)s, queued = %(queued)s::timestamptz[],
        updated_at = clock_timestamp()
    WHERE trigger = %(name)s
    RETURNING trigger
)
SELECT pg_notify('flowhost_schedules', trigger) FROM written;

-- name: claim_due_schedule
-- One schedule whose next planned time comes within %(lead)s seconds, locked (the scheduler
-- waits for the time, holding it); rows that other hosts are firing are skipped, as are rows
-- behind their trigger (a scheduler updates them first). With the runs it started that are
-- still live, in the order it started them.
SELECT s.trigger AS name, s.next_fire, s.queued, t.config, statement_timestamp() AS now,
       ARRAY(SELECT u.id
             FROM unnest(s.live_runs) WITH ORDINALITY AS u(id, n)
             JOIN flowhost.runs AS r ON r.id = u.id
             WHERE r.status IN ('queued', 'running', 'awaiting')
             ORDER BY u.n) AS live_runs
FROM flowhost.schedules AS s
JOIN flowhost.triggers AS t ON t.name = s.trigger AND t.version = s.trigger_version
WHERE s.next_fire <= statement_timestamp() + make_interval(secs => %(lead)s)
ORDER BY s.next_fire
LIMIT 1
FOR UPDATE OF s SKIP LOCKED;

-- name: claim_unblocked_schedule
-- One schedule with queued fires and no live run any more, locked.
SELECT s.trigger AS name, s.next_fire, s.queued, t.config, statement_timestamp() AS now,
       '{}'::uuid[] AS live_runs
FROM flowhost.schedules AS s
JOIN flowhost.triggers AS t ON t.name = s.trigger AND t.version = s.trigger_version
WHERE cardinality(s.queued) > 0
  AND NOT EXISTS (
      SELECT 1 FROM flowhost.runs AS r
      WHERE r.id = ANY (s.live_runs) AND r.status IN ('queued', 'running', 'awaiting'))
LIMIT 1
FOR UPDATE OF s SKIP LOCKED;

-- name: record_tick
-- What a tick did to a schedule it holds: its next planned time, queue, live runs, figures.
UPDATE flowhost.schedules
SET next_fire = %(next_fire)s,
    queued = %(queued)s::timestamptz[],
    live_runs = %(live_runs)s::uuid[],
    last_planned_at = COALESCE(%(last_planned_at)s, last_planned_at),
    last_fired_at = COALESCE(%(last_fired_at)s, last_fired_at),
    last_lag_ms = COALESCE(%(last_lag_ms)s, last_lag_ms),
    lag_fires = lag_fires + %(lag_fires)s,
    lag_total_ms = lag_total_ms + %(lag_total_ms)s,
    lag_max_ms = GREATEST(lag_max_ms, %(lag_max_ms)s),
    skipped = skipped + %(skipped)s,
    missed = missed + %(missed)s,
    failed = failed + %(failed)s,
    updated_at = clock_timestamp()
WHERE trigger = %(name)s;

-- name: schedules_next_wake
-- When a scheduler should look again: the earliest planned time of an up-to-date schedule, and
-- the live runs that queued fires wait for (their end is heard of through
-- flowhost_run_finished), with the database's clock.
SELECT (SELECT s.next_fire
        FROM flowhost.schedules AS s
        JOIN flowhost.triggers AS t ON t.name = s.trigger AND t.version = s.trigger_version
        WHERE s.next_fire IS NOT NULL
        ORDER BY s.next_fire
        LIMIT 1) AS next_fire,
       (SELECT COALESCE(array_agg(DISTINCT r.id), '{}')
        FROM flowhost.schedules AS s
        JOIN flowhost.runs AS r ON r.id = ANY (s.live_runs)
        WHERE cardinality(s.queued) > 0
          AND r.status IN ('queued', 'running', 'awaiting')) AS blocking,
       (SELECT count(*) FROM flowhost.schedules WHERE cardinality(queued) > 0) AS queued,
       clock_timestamp() AS now;

-- name: database_now
SELECT clock_timestamp() AS now;

-- name: list_schedules
-- Schedules with their trigger, subscriptions and figures, by name after %(after)s.
SELECT t.name, t.status, t.source, t.display_name, t.description, t.config, t.version,
       t.declared_at, t.registered_at,
       s.trigger IS NOT NULL AS computed, s.trigger_version = t.version AS current,
       COALESCE(s.enabled, false) AS enabled, s.next_fire, COALESCE(s.queued, '{}') AS queued,
       COALESCE(s.live_runs, '{}') AS live_runs, s.last_planned_at, s.last_fired_at,
       s.last_lag_ms, COALESCE(s.lag_fires, 0) AS lag_fires,
       COALESCE(s.lag_total_ms, 0) AS lag_total_ms, COALESCE(s.lag_max_ms, 0) AS lag_max_ms,
       COALESCE(s.skipped, 0) AS skipped, COALESCE(s.missed, 0) AS missed,
       COALESCE(s.failed, 0) AS failed,
       COALESCE(f.fires, 0) AS total_fires,
       COALESCE(sub.flows, '[]'::jsonb) AS subscriptions
FROM flowhost.triggers AS t
LEFT JOIN flowhost.schedules AS s ON s.trigger = t.name
LEFT JOIN LATERAL (
    SELECT sum(fires)::bigint AS fires FROM flowhost.trigger_fires WHERE trigger = t.name
) AS f ON true
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('flow', flow, 'mode', mode) ORDER BY flow) AS flows
    FROM flowhost.trigger_subscriptions WHERE trigger = t.name
) AS sub ON true
WHERE t.type = 'schedule'
  AND (%(name)s::text IS NULL OR t.name = %(name)s)
  AND (%(after)s::text IS NULL OR t.name > %(after)s)
  AND (%(status)s::text IS NULL OR t.status = %(status)s)
ORDER BY t.name
LIMIT %(limit)s;

-- name: schedule_fires
-- The last %(limit)s fires of a schedule, newest first, with their planned time and lag.
SELECT id, ts, data ->> 'fire_id' AS fire_id, data -> 'details' AS details,
       data -> 'runs' AS runs, data -> 'skipped' AS skipped
FROM flowhost.trigger_events
WHERE trigger = %(name)s AND type = 'trigger.fired' AND NOT data ? 'replay_of'
ORDER BY id DESC
LIMIT %(limit)s;

-- name: schedule_lag_percentiles
-- Lag of the last %(limit)s fires that were neither caught up nor queued.
SELECT count(*) AS fires,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99,
       max(lag) AS max
FROM (
    SELECT (data #>> '{details,lag_ms}')::double precision AS lag
    FROM flowhost.trigger_events
    WHERE trigger = %(name)s AND type = 'trigger.fired'
      AND data #> '{details,lag_ms}' IS NOT NULL
      AND NOT COALESCE((data #>> '{details,catchup}')::boolean, false)
      AND NOT COALESCE((data #>> '{details,queued}')::boolean, false)
    ORDER BY id DESC
    LIMIT %(limit)s
) AS recent;

-- name: touch_trigger_version
-- A runtime change of a schedule (enable, disable) is a change of its trigger: its version
-- goes up, so that an edit made against the old version is refused.
UPDATE flowhost.triggers SET version = version + 1, updated_at = clock_timestamp()
WHERE name = %(name)s
RETURNING version, updated_at;
