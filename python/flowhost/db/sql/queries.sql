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

-- name: claim_steps
-- Marks a batch of attempts running and records their step.started events, in one statement.
-- %(jobs)s is a JSON array of {"run_id", "step", "attempt"}. A job is left out when it is
-- stale: its step finished, a later attempt exists, or its run is over.
WITH wanted AS (
    SELECT j.run_id, j.step, j.attempt
    FROM jsonb_to_recordset(%(jobs)s::jsonb) AS j(run_id uuid, step text, attempt int)
), claimed AS (
    UPDATE flowhost.steps AS s
    SET status = 'running', started_at = clock_timestamp()
    FROM wanted AS w, flowhost.runs AS r
    WHERE s.run_id = w.run_id AND s.name = w.step AND s.attempt = w.attempt
      AND s.status IN ('queued', 'running')
      AND r.id = s.run_id AND r.status = 'running'
    RETURNING s.run_id, s.name, s.attempt, s.input, s.max_attempts
), started AS (
    INSERT INTO flowhost.events (run_id, type, step, attempt)
    SELECT run_id, 'step.started', name, attempt FROM claimed
)
SELECT run_id, name, attempt, input, max_attempts FROM claimed;

-- name: lock_runs
-- Serialises the end-of-step work of each run, so that parallel steps see each other's emits.
-- Locks in id order, so that two batches sharing runs cannot deadlock.
SELECT id, status, emitted FROM flowhost.runs
WHERE id = ANY (%(run_ids)s::uuid[])
ORDER BY id
FOR UPDATE;

-- name: complete_steps
-- Records a batch of results and returns every step of the runs concerned with its status as
-- of now: the completed ones patched in, since a statement does not see its own CTE's update.
-- A step completed here has `finished_at`; an attempt no longer running (a duplicate) has not.
-- Runs after lock_runs, in a statement of its own, so that its snapshot sees what the
-- transactions that held those locks before committed.
WITH results AS (
    SELECT d.run_id, d.step, d.attempt, COALESCE(d.result, 'null'::jsonb) AS result
    FROM jsonb_to_recordset(%(steps)s::jsonb) AS d(run_id uuid, step text, attempt int, result jsonb)
), done AS (
    UPDATE flowhost.steps AS s
    SET status = 'completed', result = d.result, error = NULL, finished_at = clock_timestamp()
    FROM results AS d
    WHERE s.run_id = d.run_id AND s.name = d.step AND s.attempt = d.attempt
      AND s.status = 'running'
    RETURNING s.run_id, s.name, s.started_at, s.finished_at
)
SELECT s.run_id, s.name, CASE WHEN d.name IS NULL THEN s.status ELSE 'completed' END AS status,
       d.started_at, d.finished_at
FROM flowhost.steps AS s
LEFT JOIN done AS d ON d.run_id = s.run_id AND d.name = s.name
WHERE s.run_id IN (SELECT run_id FROM results);

-- name: copy_events
-- Appends a batch of events in one round trip: the stream comes from flowhost._core.encode_events
-- (binary COPY: no text parsing on the server). Column order is the encoder's.
COPY flowhost.events (run_id, type, step, attempt, data) FROM STDIN (FORMAT BINARY);

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
-- Everything that follows a batch of step attempts but its events (appended just before by
-- copy_events), in one statement: new step rows (queued or skipped), the run rows and, for runs
-- that end, the flow statistics and a notification (delivered at commit). %(runs)s and
-- %(steps)s are JSON arrays.
-- Returns the steps newly queued; a step already scheduled in its run is left alone.
WITH changes AS (
    SELECT c.run_id, c.status, c.emitted, c.completed, c.finishing, c.result, c.error
    FROM jsonb_to_recordset(%(runs)s::jsonb) AS c(run_id uuid, status text, emitted jsonb,
                                                 completed int, finishing boolean,
                                                 result jsonb, error jsonb)
), new_steps AS (
    INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input, finished_at)
    SELECT s.run_id, s.name, s.status, s.attempt, s.max_attempts, s.input,
           CASE WHEN s.status = 'skipped' THEN clock_timestamp() END
    FROM jsonb_to_recordset(%(steps)s::jsonb)
        AS s(run_id uuid, name text, status text, attempt int, max_attempts int, input jsonb)
    ON CONFLICT (run_id, name) DO NOTHING
    RETURNING run_id, name, status
), updated AS (
    UPDATE flowhost.runs AS r
    SET status = c.status,
        emitted = c.emitted,
        completed_steps = r.completed_steps + c.completed,
        result = CASE WHEN c.finishing AND c.status = 'completed'
                      THEN COALESCE(c.result, 'null'::jsonb) ELSE r.result END,
        error = COALESCE(c.error, r.error),
        finished_at = CASE WHEN c.status <> 'running'
                           THEN COALESCE(r.finished_at, clock_timestamp()) END,
        version = r.version + 1
    FROM changes AS c
    WHERE r.id = c.run_id
    RETURNING r.id, r.flow, r.created_at, r.finished_at, c.status, c.finishing
), finished AS (
    SELECT flow,
           count(*) AS runs,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'canceled') AS canceled,
           sum((extract(epoch FROM finished_at - created_at) * 1000)::bigint) AS duration_ms
    FROM updated WHERE finishing
    GROUP BY flow
), statistics AS (
    UPDATE flowhost.flow_stats AS f
    SET running = f.running - n.runs,
        completed = f.completed + n.completed,
        failed = f.failed + n.failed,
        canceled = f.canceled + n.canceled,
        total_duration_ms = f.total_duration_ms + n.duration_ms,
        last_completed_at = CASE WHEN n.completed > 0 THEN now() ELSE f.last_completed_at END
    FROM finished AS n
    WHERE f.flow = n.flow
), notified AS (
    -- `flowhost run` and other listeners learn that a run ended.
    SELECT pg_notify('flowhost_run_finished',
                     json_build_object('run', id, 'status', status)::text)
    FROM updated WHERE finishing
)
SELECT (SELECT COALESCE(jsonb_agg(jsonb_build_object('run_id', run_id, 'name', name)),
                        '[]'::jsonb)
        FROM new_steps WHERE status = 'queued') AS queued,
       (SELECT count(*) FROM notified) AS notified;

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
    AND EXISTS (SELECT 1 FROM event)
RETURNING key;

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

-- name: state_keys
SELECT key FROM flowhost.state WHERE run_id = %(run_id)s ORDER BY key;

-- name: claim_start_key
-- Takes `key` for a new run of `flow`; returns nothing when a run already holds it.
INSERT INTO flowhost.start_keys (flow, key, run_id)
VALUES (%(flow)s, %(key)s, %(run_id)s)
ON CONFLICT (flow, key) DO NOTHING
RETURNING run_id;

-- name: run_of_start_key
SELECT run_id FROM flowhost.start_keys WHERE flow = %(flow)s AND key = %(key)s;

-- name: cancel_run
-- Ends a running run as canceled; its queued steps are then stale and never claimed.
WITH canceled AS (
    UPDATE flowhost.runs
    SET status = 'canceled', finished_at = clock_timestamp(), version = version + 1
    WHERE id = %(run_id)s AND status = 'running'
    RETURNING id, flow
), event AS (
    INSERT INTO flowhost.events (run_id, type, data)
    SELECT id, 'flow.canceled', jsonb_build_object('by', %(by)s::text) FROM canceled
), stats AS (
    UPDATE flowhost.flow_stats AS s
    SET running = s.running - 1, canceled = s.canceled + 1
    FROM canceled AS c WHERE s.flow = c.flow
)
SELECT count(*) AS canceled FROM canceled;

-- name: run_is_running
SELECT EXISTS (SELECT 1 FROM flowhost.runs WHERE id = %(run_id)s AND status = 'running')
    AS running;

-- name: flow_has_running_runs
SELECT EXISTS (
    SELECT 1 FROM flowhost.runs
    WHERE flow = %(flow)s AND status = 'running' AND id <> ALL (%(excluded)s::uuid[])
) AS running;
