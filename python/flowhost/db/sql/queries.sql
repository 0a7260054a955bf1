-- The queries of flowhost. Each block is one statement, loaded by flowhost.db.queries.

-- name: upsert_flow
INSERT INTO flowhost.flows (name, definition, definition_hash)
VALUES (%(name)s, %(definition)s, %(definition_hash)s)
ON CONFLICT (name) DO UPDATE
    SET definition = EXCLUDED.definition,
        definition_hash = EXCLUDED.definition_hash,
        updated_at = now()
    WHERE flows.definition_hash <> EXCLUDED.definition_hash;

-- name: ensure_flow_stats
INSERT INTO flowhost.flow_stats (flow) VALUES (%(flow)s) ON CONFLICT (flow) DO NOTHING;

-- name: start_runs
-- Starting runs: run rows, entry-step rows, flow.started events and statistics in one statement.
-- %(runs)s is a JSON array of {"id", "input"}; the caller enqueues the entry jobs beside it.
WITH started AS (
    -- jsonb_to_recordset reads a JSON null as SQL NULL; a run's input may be JSON null.
    SELECT r.id, COALESCE(r.input, 'null'::jsonb) AS input
    FROM jsonb_to_recordset(%(runs)s::jsonb) AS r(id uuid, input jsonb)
), run_rows AS (
    INSERT INTO flowhost.runs (id, flow, status, input, definition_hash, step_count)
    SELECT id, %(flow)s, 'running', input, %(definition_hash)s, %(step_count)s FROM started
), step_rows AS (
    INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input)
    SELECT id, %(entry)s, 'queued', 1, %(max_attempts)s, input FROM started
), event_rows AS (
    INSERT INTO flowhost.events (run_id, type, data)
    SELECT id, 'flow.started', jsonb_build_object('flow', %(flow)s::text, 'input', input,
                                                  'definition_hash', %(definition_hash)s::text)
    FROM started
), statistics AS (
    INSERT INTO flowhost.flow_stats AS f (flow, total, running, last_run_at)
    SELECT %(flow)s, count(*), count(*), now() FROM started
    ON CONFLICT (flow) DO UPDATE
        SET total = f.total + EXCLUDED.total,
            running = f.running + EXCLUDED.running,
            last_run_at = now()
)
SELECT count(*) AS started FROM started;

-- name: claim_step
-- Marks the attempt running and records step.started in one statement. Returns nothing when
-- the job is stale: the step finished, a later attempt exists, or the run is over.
WITH claimed AS (
    UPDATE flowhost.steps AS s
    SET status = 'running', started_at = clock_timestamp()
    FROM flowhost.runs AS r
    WHERE s.run_id = %(run_id)s AND s.name = %(step)s AND s.attempt = %(attempt)s
      AND s.status IN ('queued', 'running')
      AND r.id = s.run_id AND r.status = 'running'
    RETURNING s.input, s.max_attempts, r.flow, r.definition_hash
), started AS (
    INSERT INTO flowhost.events (run_id, type, step, attempt, data)
    SELECT %(run_id)s, 'step.started', %(step)s, %(attempt)s, %(data)s FROM claimed
)
SELECT input, max_attempts, flow, definition_hash FROM claimed;

-- name: lock_run
-- Serialises the end-of-step work of one run, so that parallel steps see each other's emits.
SELECT status, emitted, created_at FROM flowhost.runs WHERE id = %(run_id)s FOR UPDATE;

-- name: complete_step
-- Records the result and returns every step of the run with its status as of now: the
-- completed one patched in, since a statement does not see its own CTE's update. Returns no
-- row with `finished_at` when this attempt is no longer the running one (a duplicate).
WITH done AS (
    UPDATE flowhost.steps
    SET status = 'completed', result = %(result)s, error = NULL, finished_at = clock_timestamp()
    WHERE run_id = %(run_id)s AND name = %(step)s AND attempt = %(attempt)s
      AND status = 'running'
    RETURNING name, started_at, finished_at
)
SELECT s.name, CASE WHEN d.name IS NULL THEN s.status ELSE 'completed' END AS status,
       d.started_at, d.finished_at
FROM flowhost.steps AS s LEFT JOIN done AS d ON d.name = s.name
WHERE s.run_id = %(run_id)s;

-- name: retry_step
UPDATE flowhost.steps
SET status = 'queued', attempt = attempt + 1, error = %(error)s, started_at = NULL
WHERE run_id = %(run_id)s AND name = %(step)s AND attempt = %(attempt)s AND status = 'running'
RETURNING attempt;

-- name: fail_step
UPDATE flowhost.steps
SET status = 'failed', error = %(error)s, finished_at = clock_timestamp()
WHERE run_id = %(run_id)s AND name = %(step)s AND attempt = %(attempt)s AND status = 'running'
RETURNING started_at;

-- name: record_progress
-- Everything that follows a step attempt, in one statement: new step rows (queued or
-- skipped), the events in order, the run row and, when the run ends, the flow statistics and
-- a notification. %(steps)s and %(events)s are JSON arrays. Returns the steps newly queued.
WITH new_steps AS (
    INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input, finished_at)
    SELECT %(run_id)s, s.name, s.status, s.attempt, s.max_attempts, s.input,
           CASE WHEN s.status = 'skipped' THEN clock_timestamp() END
    FROM jsonb_to_recordset(%(steps)s::jsonb)
        AS s(name text, status text, attempt int, max_attempts int, input jsonb)
    ON CONFLICT (run_id, name) DO NOTHING
    RETURNING name, status
), new_events AS (
    INSERT INTO flowhost.events (run_id, type, step, attempt, data)
    SELECT %(run_id)s, e.type, e.step, e.attempt, COALESCE(e.data, '{}'::jsonb)
    FROM ROWS FROM (jsonb_to_recordset(%(events)s::jsonb)
                    AS (type text, step text, attempt int, data jsonb))
        WITH ORDINALITY AS e(type, step, attempt, data, position)
    ORDER BY e.position
), run AS (
    UPDATE flowhost.runs
    SET status = %(status)s,
        emitted = %(emitted)s,
        completed_steps = completed_steps + %(completed)s,
        result = COALESCE(%(result)s, result),
        error = COALESCE(%(error)s, error),
        finished_at = CASE WHEN %(status)s <> 'running'
                           THEN COALESCE(finished_at, clock_timestamp()) END,
        version = version + 1
    WHERE id = %(run_id)s
    RETURNING flow, created_at, finished_at
), statistics AS (
    UPDATE flowhost.flow_stats AS f
    SET running = f.running - 1,
        completed = f.completed + (%(status)s = 'completed')::int,
        failed = f.failed + (%(status)s = 'failed')::int,
        canceled = f.canceled + (%(status)s = 'canceled')::int,
        total_duration_ms = f.total_duration_ms
            + (extract(epoch FROM run.finished_at - run.created_at) * 1000)::bigint,
        last_completed_at = CASE WHEN %(status)s = 'completed' THEN now()
                                 ELSE f.last_completed_at END
    FROM run
    WHERE %(finishing)s AND f.flow = run.flow
    -- Delivered at commit: `flowhost run` and other listeners learn that the run ended.
    RETURNING pg_notify('flowhost_run_finished',
                        json_build_object('run', %(run_id)s, 'status', %(status)s)::text)
)
SELECT array(SELECT name FROM new_steps WHERE status = 'queued') AS queued,
       (SELECT count(*) FROM statistics) AS finished;

-- name: state_get
SELECT value FROM flowhost.state WHERE run_id = %(run_id)s AND key = %(key)s;

-- name: state_set
WITH event AS (
    INSERT INTO flowhost.events (run_id, type, step, attempt, data)
    VALUES (%(run_id)s, 'state.set', %(step)s, %(attempt)s,
            jsonb_build_object('key', %(key)s::text, 'value', %(value)s::jsonb))
    RETURNING id
)
INSERT INTO flowhost.state (run_id, key, value, event_id)
SELECT %(run_id)s, %(key)s, %(value)s, id FROM event
ON CONFLICT (run_id, key) DO UPDATE
    SET value = EXCLUDED.value, event_id = EXCLUDED.event_id, updated_at = clock_timestamp();

-- name: state_delete
WITH event AS (
    INSERT INTO flowhost.events (run_id, type, step, attempt, data)
    VALUES (%(run_id)s, 'state.delete', %(step)s, %(attempt)s,
            jsonb_build_object('key', %(key)s::text))
    RETURNING id
)
DELETE FROM flowhost.state WHERE run_id = %(run_id)s AND key = %(key)s
    AND EXISTS (SELECT 1 FROM event);

-- name: state_of_run
SELECT key, value FROM flowhost.state WHERE run_id = %(run_id)s ORDER BY key;

-- name: get_run
SELECT id, flow, status, input, result, error, definition_hash, step_count, completed_steps,
       created_at, finished_at
FROM flowhost.runs WHERE id = %(run_id)s;

-- name: steps_of_run
SELECT name, status, attempt, max_attempts, result, error, queued_at, started_at, finished_at
FROM flowhost.steps WHERE run_id = %(run_id)s
ORDER BY COALESCE(started_at, finished_at, queued_at), name;

-- name: events_of_run
SELECT id, type, step, attempt, ts, data
FROM flowhost.events
WHERE run_id = %(run_id)s AND id > %(after)s
ORDER BY id
LIMIT %(limit)s;

-- name: list_runs
SELECT id, flow, status, step_count, completed_steps, created_at, finished_at
FROM flowhost.runs
WHERE (%(flow)s::text IS NULL OR flow = %(flow)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY created_at DESC, id
LIMIT %(limit)s;

-- name: find_run_by_prefix
SELECT id FROM flowhost.runs WHERE id::text LIKE %(prefix)s || '%%' LIMIT 2;

-- name: flow_stats
SELECT flow, total, running, completed, failed, canceled, total_duration_ms,
       last_run_at, last_completed_at
FROM flowhost.flow_stats ORDER BY flow;

-- name: host_alive
INSERT INTO flowhost.hosts (id, hostname, pid, flows)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(flows)s)
ON CONFLICT (id) DO UPDATE SET flows = EXCLUDED.flows, last_seen = now();

-- name: host_gone
DELETE FROM flowhost.hosts WHERE id = %(id)s;

-- name: hosts_serving
SELECT count(*) AS hosts FROM flowhost.hosts
WHERE %(flow)s = ANY (flows) AND last_seen > now() - make_interval(secs => %(stale_after)s);
