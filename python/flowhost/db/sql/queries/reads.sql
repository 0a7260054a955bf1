-- The read side: runs, steps and events as the CLI and the API show them.

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
SELECT id, flow, status, step_count, completed_steps, created_at, finished_at, start_at,
       priority
FROM flowhost.runs
WHERE (%(flow)s::text IS NULL OR flow = %(flow)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY created_at DESC, id
LIMIT %(limit)s;

-- name: find_run_by_prefix
SELECT id FROM flowhost.runs WHERE id::text LIKE %(prefix)s || '%%' LIMIT 2;
