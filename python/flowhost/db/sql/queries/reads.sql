-- The read side: runs, steps and events as the CLI and the API show them.

-- name: get_run
SELECT id, flow, status, input, result, error, definition_hash, step_count, completed_steps,
       created_at, finished_at, priority, start_at, parent_run_id
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
-- Runs newest first, filtered, a page at a time: the page after the run created at
-- %(after_created)s with id %(after_id)s (keyset paging; null: the first page). Run with
-- prepare=False (flowhost.store.reads.list_runs): each call is planned for its own filters,
-- so that the absent ones fold away and the index that fits the given ones is used.
SELECT id, flow, status, step_count, completed_steps, created_at, finished_at, start_at,
       priority, parent_run_id
FROM flowhost.runs
WHERE (%(flow)s::text IS NULL OR flow = %(flow)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(parent)s::uuid IS NULL OR parent_run_id = %(parent)s)
  AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR created_at < %(until)s)
  AND (%(after_created)s::timestamptz IS NULL
       OR (created_at <= %(after_created)s
           AND (created_at < %(after_created)s OR id > %(after_id)s)))
ORDER BY created_at DESC, id
LIMIT %(limit)s;

-- name: runs_by_id_prefix
-- Runs whose id starts with a prefix: the ids from %(low)s to %(high)s (the prefix padded with
-- 0s and fs), a range of the primary key.
SELECT id, flow, status, step_count, completed_steps, created_at, finished_at, start_at,
       priority, parent_run_id
FROM flowhost.runs
WHERE id BETWEEN %(low)s AND %(high)s
ORDER BY id
LIMIT %(limit)s;
