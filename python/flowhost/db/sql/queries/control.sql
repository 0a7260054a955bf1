-- Run control from steps and operators: cancel, retry, replay, is-running queries, start keys;
-- and what hosts check to stop attempts whose run is over.

-- name: cancel_steps
-- Ends the in-flight steps (queued, running, awaiting) of runs that are over, returning each
-- with the status it had. Hosts running an attempt of one of them hear of it at commit
-- (flowhost_cancel, payload: the run id) and stop it. The runs are locked (lock_runs) first;
-- FOR UPDATE waits for a claim in flight, so that `previous` is the status it committed.
WITH before AS (
    SELECT run_id, name, attempt, status FROM flowhost.steps
    WHERE run_id = ANY (%(run_ids)s::uuid[]) AND status IN ('queued', 'running', 'awaiting')
    ORDER BY run_id, name
    FOR UPDATE
), canceled AS (
    UPDATE flowhost.steps AS s
    SET status = 'canceled', finished_at = clock_timestamp()
    FROM before AS b
    WHERE s.run_id = b.run_id AND s.name = b.name
    RETURNING s.run_id, s.name, s.attempt, b.status AS previous
), notified AS (
    SELECT pg_notify('flowhost_cancel', r.run_id::text)
    FROM (SELECT DISTINCT run_id FROM canceled WHERE previous = 'running') AS r
)
SELECT run_id, name, attempt, previous, (SELECT count(*) FROM notified) AS notified
FROM canceled
ORDER BY run_id, name;

-- name: stale_attempts
-- Of the attempts a host is running (%(jobs)s: a JSON array of {"run_id", "step", "attempt"}),
-- those to stop: their run is over, or they are no longer their step's running attempt.
SELECT j.run_id, j.step, j.attempt, r.status AS run_status, s.status AS step_status
FROM jsonb_to_recordset(%(jobs)s::jsonb) AS j(run_id uuid, step text, attempt int)
LEFT JOIN flowhost.runs AS r ON r.id = j.run_id
LEFT JOIN flowhost.steps AS s ON s.run_id = j.run_id AND s.name = j.step
WHERE r.status IS NULL OR r.status NOT IN ('running', 'awaiting')
   OR s.status IS DISTINCT FROM 'running' OR s.attempt <> j.attempt;

-- name: step_rows
-- Every step of a run with what it recorded: what retry, replay and a failure decide from.
SELECT name, status, attempt, max_attempts, input, result, error, finished_at
FROM flowhost.steps WHERE run_id = %(run_id)s
ORDER BY name;

-- name: requeue_steps
-- Retry: each step (%(steps)s: [{"name", "attempts"}]) gets a new attempt numbered after its
-- last one, and a fresh budget of `attempts` attempts.
UPDATE flowhost.steps AS s
SET status = 'queued', attempt = s.attempt + 1, max_attempts = s.attempt + r.attempts,
    started_at = NULL, finished_at = NULL
FROM jsonb_to_recordset(%(steps)s::jsonb) AS r(name text, attempts int)
WHERE s.run_id = %(run_id)s AND s.name = r.name
RETURNING s.name, s.attempt;

-- name: unschedule_steps
-- Retry: skipped steps that can run again become unscheduled, like steps not reached yet.
DELETE FROM flowhost.steps
WHERE run_id = %(run_id)s AND name = ANY (%(names)s::text[]) AND status = 'skipped';

-- name: replay_point
-- Replay: where step %(step)s first started in run %(run_id)s (null if it never did).
SELECT min(id) AS event_id FROM flowhost.events
WHERE run_id = %(run_id)s AND type = 'step.started' AND step = %(step)s;

-- name: steps_completed_before
-- Replay: the steps of run %(run_id)s that completed before event %(before)s, in the order they
-- completed, with the attempt that completed them.
SELECT e.step AS name, e.attempt
FROM flowhost.events AS e
JOIN flowhost.steps AS s ON s.run_id = e.run_id AND s.name = e.step AND s.status = 'completed'
WHERE e.run_id = %(run_id)s AND e.type = 'step.completed' AND e.id < %(before)s
ORDER BY e.id;

-- name: copy_steps
-- Replay: the given completed steps of run %(from_run)s, recorded as they were in run %(run_id)s.
INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input, result,
                            queued_at, started_at, finished_at)
SELECT %(run_id)s, name, status, attempt, max_attempts, input, result,
       queued_at, started_at, finished_at
FROM flowhost.steps
WHERE run_id = %(from_run)s AND name = ANY (%(names)s::text[]) AND status = 'completed';

-- name: copy_step_events
-- Replay: the emit and step.completed events of the given attempts (%(steps)s: [{"name",
-- "attempt"}]) of run %(from_run)s, appended in their order to run %(run_id)s, each naming the
-- event it copies. Returns the emits, for the run's emitted events.
WITH copied AS (
    INSERT INTO flowhost.events (run_id, type, step, attempt, data)
    SELECT %(run_id)s, e.type, e.step, e.attempt,
           (e.data - 'duration_ms') || jsonb_build_object('replayed_from', e.id)
    FROM flowhost.events AS e
    JOIN jsonb_to_recordset(%(steps)s::jsonb) AS s(name text, attempt int)
        ON e.step = s.name AND e.attempt = s.attempt
    WHERE e.run_id = %(from_run)s AND e.type IN ('emit', 'step.completed')
      AND e.id < %(before)s
    ORDER BY e.id
    RETURNING id, type, data
)
SELECT data->>'name' AS name, data->'payload' AS payload
FROM copied WHERE type = 'emit'
ORDER BY id;

-- name: copy_state
-- Replay: the state of run %(from_run)s as of event %(before)s (the last state event of each key
-- before it), written to run %(run_id)s with a state.set event per key.
WITH last AS (
    SELECT DISTINCT ON (data->>'key') data->>'key' AS key, type, data->'value' AS value, id
    FROM flowhost.events
    WHERE run_id = %(from_run)s AND id < %(before)s AND type IN ('state.set', 'state.delete')
    ORDER BY data->>'key', id DESC
), written AS (
    INSERT INTO flowhost.events (run_id, type, data)
    SELECT %(run_id)s, 'state.set',
           jsonb_build_object('key', key, 'value', value, 'replayed_from', id)
    FROM last WHERE type = 'state.set'
    ORDER BY key
    RETURNING id, data->>'key' AS key, data->'value' AS value
)
INSERT INTO flowhost.state (run_id, key, value, event_id)
SELECT %(run_id)s, key, value, id FROM written;

-- name: run_is_running
SELECT EXISTS (SELECT 1 FROM flowhost.runs
               WHERE id = %(run_id)s AND status IN ('queued', 'running', 'awaiting'))
    AS running;

-- name: flow_has_running_runs
SELECT EXISTS (
    SELECT 1 FROM flowhost.runs
    WHERE flow = %(flow)s AND status IN ('queued', 'running', 'awaiting')
      AND id <> ALL (%(excluded)s::uuid[])
) AS running;

-- name: claim_start_key
-- Takes `key` for a new run of `flow`; returns nothing when a run already holds it.
INSERT INTO flowhost.start_keys (flow, key, run_id)
VALUES (%(flow)s, %(key)s, %(run_id)s)
ON CONFLICT (flow, key) DO NOTHING
RETURNING run_id;

-- name: run_of_start_key
SELECT run_id FROM flowhost.start_keys WHERE flow = %(flow)s AND key = %(key)s;
