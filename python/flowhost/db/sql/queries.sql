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

-- name: append_events
-- Batched append: one round trip for any number of events, of one or many runs.
INSERT INTO flowhost.events (run_id, type, step, attempt, data)
SELECT e.run_id, e.type, e.step, e.attempt, e.data
FROM unnest(%(run_ids)s::uuid[], %(types)s::text[], %(steps)s::text[], %(attempts)s::int[],
            %(data)s::jsonb[]) WITH ORDINALITY AS e(run_id, type, step, attempt, data, position)
ORDER BY e.position
RETURNING id;

-- name: insert_runs
INSERT INTO flowhost.runs (id, flow, status, input, definition_hash, step_count)
SELECT r.id, %(flow)s, 'running', r.input, %(definition_hash)s, %(step_count)s
FROM unnest(%(ids)s::uuid[], %(inputs)s::jsonb[]) AS r(id, input);

-- name: insert_steps
-- Schedules steps; a step already scheduled in the run is left alone (a step runs once per run).
INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input)
SELECT s.run_id, s.name, 'queued', 1, s.max_attempts, s.input
FROM unnest(%(run_ids)s::uuid[], %(names)s::text[], %(max_attempts)s::int[],
            %(inputs)s::jsonb[]) AS s(run_id, name, max_attempts, input)
ON CONFLICT (run_id, name) DO NOTHING
RETURNING run_id, name;

-- name: skip_steps
INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, finished_at)
SELECT %(run_id)s, s.name, 'skipped', 0, 0, clock_timestamp()
FROM unnest(%(names)s::text[]) AS s(name)
ON CONFLICT (run_id, name) DO NOTHING;

-- name: count_started_runs
INSERT INTO flowhost.flow_stats AS f (flow, total, running, last_run_at)
VALUES (%(flow)s, %(count)s, %(count)s, now())
ON CONFLICT (flow) DO UPDATE
    SET total = f.total + EXCLUDED.total,
        running = f.running + EXCLUDED.running,
        last_run_at = now();

-- name: count_finished_run
UPDATE flowhost.flow_stats
SET running = running - 1,
    completed = completed + (%(status)s = 'completed')::int,
    failed = failed + (%(status)s = 'failed')::int,
    canceled = canceled + (%(status)s = 'canceled')::int,
    total_duration_ms = total_duration_ms + %(duration_ms)s,
    last_completed_at = CASE WHEN %(status)s = 'completed' THEN now() ELSE last_completed_at END
WHERE flow = %(flow)s;

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

-- name: step_statuses
-- A statement of its own after lock_run: under READ COMMITTED it then sees what the
-- transaction that held the lock before us committed.
SELECT name, status FROM flowhost.steps WHERE run_id = %(run_id)s;

-- name: complete_step
UPDATE flowhost.steps
SET status = 'completed', result = %(result)s, error = NULL, finished_at = clock_timestamp()
WHERE run_id = %(run_id)s AND name = %(step)s AND attempt = %(attempt)s AND status = 'running'
RETURNING started_at, finished_at;

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

-- name: update_run
UPDATE flowhost.runs
SET status = %(status)s,
    emitted = %(emitted)s,
    step_count = %(step_count)s,
    completed_steps = completed_steps + %(completed)s,
    result = COALESCE(%(result)s, result),
    error = COALESCE(%(error)s, error),
    finished_at = CASE WHEN %(status)s <> 'running' THEN COALESCE(finished_at, clock_timestamp()) END,
    version = version + 1
WHERE id = %(run_id)s
RETURNING flow, created_at, finished_at;

-- name: notify_run_finished
SELECT pg_notify('flowhost_run_finished', %(payload)s);

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
