-- Moving runs forward: starting them, claiming and ending step attempts.

-- name: start_runs
-- Starting runs: run rows, entry-step rows and flow.started events in one statement (the
-- runs_count_inserted trigger counts them in flow_stats). A run's created_at is its flow.started
-- event's time, so that durations rebuilt from events equal the counted ones.
-- %(runs)s is a JSON array of {"id", "input", "key", "started"}; the caller then passes the runs
-- through flow control (flowhost.engine.scheduling), which enqueues their entry jobs or lets them
-- wait. %(started_data)s, then the run's own "started" (an object or null), is added to each
-- flow.started event's data. With %(entry)s null no entry
-- step is scheduled (a replay schedules the steps it runs itself).
-- Runs start `running`, or `queued` when they wait for a slot or for their start time
-- (%(start_at)s, else now + %(delay)s seconds when positive), which is returned.
WITH started AS (
    -- jsonb_to_recordset reads a JSON null as SQL NULL; a run's input may be JSON null.
    -- Materialised once (referenced thrice), so each run's `at` is one value.
    SELECT r.id, COALESCE(r.input, 'null'::jsonb) AS input, r.key, r.started AS own,
           clock_timestamp() AS at
    FROM jsonb_to_recordset(%(runs)s::jsonb) AS r(id uuid, input jsonb, key text, started jsonb)
), run_rows AS (
    INSERT INTO flowhost.runs (id, flow, status, input, definition_hash, step_count,
                               parent_run_id, priority, concurrency_key, start_at, flow_control,
                               created_at, last_activity_at)
    SELECT id, %(flow)s, %(status)s, input, %(definition_hash)s, %(step_count)s,
           %(parent_run_id)s::uuid, %(priority)s, key,
           COALESCE(%(start_at)s::timestamptz,
                    CASE WHEN %(delay)s::float8 > 0
                         THEN now() + make_interval(secs => %(delay)s::float8) END),
           %(flow_control)s, at, at
    FROM started
    RETURNING start_at
), step_rows AS (
    INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input, flow_control)
    SELECT id, %(entry)s, 'queued', 1, %(max_attempts)s, input, %(entry_flow_control)s
    FROM started
    WHERE %(entry)s::text IS NOT NULL
), event_rows AS (
    INSERT INTO flowhost.events (run_id, type, ts, data)
    SELECT id, 'flow.started', at,
           jsonb_build_object('flow', %(flow)s::text, 'input', input,
                              'definition_hash', %(definition_hash)s::text)
           || CASE WHEN %(parent_run_id)s::uuid IS NULL THEN '{}'::jsonb
                   ELSE jsonb_build_object('parent_run_id', %(parent_run_id)s::uuid) END
           || %(started_data)s::jsonb
           || COALESCE(own, '{}'::jsonb)
    FROM started
)
SELECT count(*) AS started, (SELECT max(start_at) FROM run_rows) AS start_at FROM started;

-- name: claim_steps
-- Marks a batch of attempts running and records their step.started events, in one statement.
-- One job per index of the arrays %(run_ids)s, %(steps)s, %(attempts)s and %(hashes)s: `hash` is
-- the definition of the flow this host serves. A job is left out when it is stale: its step finished, a later
-- attempt exists, or its run is over. A job of a live run on another definition is not
-- claimed: it comes back with `claimed` false, the run's hash, and whether a live host (seen
-- within %(stale_after)s seconds) serves that definition.
WITH wanted AS (
    -- Each job with its run, read once for both answers.
    SELECT j.run_id, j.step, j.attempt, j.hash, r.flow, r.definition_hash,
           r.status IN ('running', 'awaiting') AS live
    FROM unnest(%(run_ids)s::uuid[], %(steps)s::text[], %(attempts)s::int[],
                %(hashes)s::text[]) AS j(run_id, step, attempt, hash)
    JOIN flowhost.runs AS r ON r.id = j.run_id
), claimed AS (
    UPDATE flowhost.steps AS s
    SET status = 'running', started_at = clock_timestamp()
    FROM wanted AS w
    WHERE s.run_id = w.run_id AND s.name = w.step AND s.attempt = w.attempt
      AND s.status IN ('queued', 'running') AND w.live AND w.definition_hash = w.hash
    RETURNING s.run_id, s.name, s.attempt, s.input, s.max_attempts, s.awaited
), started AS (
    INSERT INTO flowhost.events (run_id, type, step, attempt)
    SELECT run_id, 'step.started', name, attempt FROM claimed
)
SELECT run_id, name, attempt, input, max_attempts, awaited, true AS claimed,
       NULL AS definition_hash, NULL::boolean AS served
FROM claimed
UNION ALL
SELECT w.run_id, w.step, w.attempt, NULL, NULL, NULL, false, w.definition_hash,
       EXISTS (SELECT 1 FROM flowhost.hosts AS h
               WHERE h.definitions ->> w.flow = w.definition_hash
                 AND h.last_seen > now() - make_interval(secs => %(stale_after)s))
FROM wanted AS w
WHERE w.live AND w.definition_hash <> w.hash;

-- name: lock_runs
-- Serialises the end-of-step work of each run, so that parallel steps see each other's emits.
-- Locks in id order, so that two batches sharing runs cannot deadlock.
SELECT id, status, emitted, priority, concurrency_key FROM flowhost.runs
WHERE id = ANY (%(run_ids)s::uuid[])
ORDER BY id
FOR UPDATE;

-- name: complete_steps
-- Records a batch of results and returns every step of the runs concerned with its status as
-- of now: the completed ones patched in, since a statement does not see its own CTE's update.
-- A step with an await after it becomes `awaiting` (its result recorded, its emits held).
-- A step completed here has `finished_at`; an attempt no longer running (a duplicate) has not.
-- Runs after lock_runs, in a statement of its own, so that its snapshot sees what the
-- transactions that held those locks before committed.
WITH results AS (
    SELECT d.run_id, d.step, d.attempt, COALESCE(d.result, 'null'::jsonb) AS result, d.status
    FROM jsonb_to_recordset(%(steps)s::jsonb)
        AS d(run_id uuid, step text, attempt int, result jsonb, status text)
), done AS (
    UPDATE flowhost.steps AS s
    SET status = d.status, result = d.result, error = NULL, finished_at = clock_timestamp()
    FROM results AS d
    WHERE s.run_id = d.run_id AND s.name = d.step AND s.attempt = d.attempt
      AND s.status = 'running'
    RETURNING s.run_id, s.name, s.status, s.started_at, s.finished_at
)
SELECT s.run_id, s.name, COALESCE(d.status, s.status) AS status,
       d.started_at, d.finished_at
FROM flowhost.steps AS s
LEFT JOIN done AS d ON d.run_id = s.run_id AND d.name = s.name
WHERE s.run_id IN (SELECT run_id FROM results);

-- name: copy_events
-- Appends a batch of events in one round trip: the stream comes from flowhost._core.encode_events
-- (binary COPY: no text parsing on the server). Column order is the encoder's.
COPY flowhost.events (run_id, type, step, attempt, data) FROM STDIN (FORMAT BINARY);

-- name: insert_events
-- copy_events for connections in pipeline mode, where COPY is not available: the events, in
-- the order of the arrays (ids follow it), from arrays of equal length; `data` as JSON text,
-- sent in binary: psycopg quotes each element of a text array with a regular expression, which
-- cost 13 µs per event for the quotes of JSON (0.3 µs in binary).
INSERT INTO flowhost.events (run_id, type, step, attempt, data)
SELECT e.run_id, e.type, e.step, e.attempt, e.data::jsonb
FROM unnest(%(run_ids)s::uuid[], %(types)s::text[], %(steps)s::text[], %(attempts)s::int[],
            %(data)b::text[]) WITH ORDINALITY AS e(run_id, type, step, attempt, data, n)
ORDER BY e.n;

-- name: retry_step
UPDATE flowhost.steps
SET status = 'queued', attempt = attempt + 1, error = %(error)s, started_at = NULL
WHERE run_id = %(run_id)s AND name = %(step)s AND attempt = %(attempt)s AND status = 'running'
RETURNING attempt;

-- name: fail_step
UPDATE flowhost.steps
SET status = 'failed', error = %(error)s, finished_at = clock_timestamp()
WHERE run_id = %(run_id)s AND name = %(step)s AND attempt = %(attempt)s AND status = 'running'
RETURNING started_at, finished_at;

-- name: record_progress
-- Everything that follows a batch of step attempts but its events (appended just before by
-- copy_events), in one statement: new step rows (queued or skipped), the run rows, the step
-- figures and, for runs that end, a notification (delivered at commit). %(runs)s, %(steps)s
-- and %(figures)s are JSON arrays. The runs are locked (lock_runs) beforehand. The
-- runs_count_updated trigger moves the flow statistics of runs whose status changed.
-- Returns the steps newly queued; a step already scheduled in its run is left alone.
WITH changes AS (
    SELECT c.run_id, c.status, c.emitted, c.completed, c.finishing, c.result, c.error
    FROM jsonb_to_recordset(%(runs)s::jsonb) AS c(run_id uuid, status text, emitted jsonb,
                                                 completed int, finishing boolean,
                                                 result jsonb, error jsonb)
), new_steps AS (
    INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input, finished_at,
                                flow_control)
    SELECT s.run_id, s.name, s.status, s.attempt, s.max_attempts, s.input,
           CASE WHEN s.status = 'skipped' THEN clock_timestamp() END,
           COALESCE(s.flow_control, false)
    FROM jsonb_to_recordset(%(steps)s::jsonb)
        AS s(run_id uuid, name text, status text, attempt int, max_attempts int, input jsonb,
             flow_control boolean)
    ON CONFLICT (run_id, name) DO NOTHING
    RETURNING run_id, name, status
), updated AS (
    UPDATE flowhost.runs AS r
    SET status = c.status,
        emitted = c.emitted,
        completed_steps = r.completed_steps + c.completed,
        result = CASE WHEN c.finishing AND c.status = 'completed'
                      THEN COALESCE(c.result, 'null'::jsonb) ELSE r.result END,
        -- A live run has no error (a retried one loses the error it failed with).
        error = CASE WHEN c.status IN ('queued', 'running', 'awaiting') THEN NULL
                     ELSE COALESCE(c.error, r.error) END,
        -- A run that ends now ends at the time of its terminal event (appended just before),
        -- so that durations counted from run rows equal those rebuilt from its events.
        finished_at = CASE
            WHEN c.status IN ('queued', 'running', 'awaiting') THEN NULL
            WHEN c.finishing OR r.finished_at IS NULL THEN COALESCE(
                (SELECT e.ts FROM flowhost.events AS e
                 WHERE e.run_id = r.id
                   AND e.type IN ('flow.completed', 'flow.failed', 'flow.canceled',
                                  'flow.stalled')
                 ORDER BY e.id DESC LIMIT 1),
                clock_timestamp())
            ELSE r.finished_at END,
        last_activity_at = clock_timestamp(),
        version = r.version + 1
    FROM changes AS c
    WHERE r.id = c.run_id
    RETURNING r.id, r.flow, c.status, c.finishing
), figures AS (
    -- The step figures of this batch's step.completed/failed/retry/skipped events, added in
    -- one upsert in name order, so that two batches cannot deadlock.
    INSERT INTO flowhost.step_stats AS f
        (flow, step, completed, failed, retried, skipped, total_duration_ms, max_duration_ms,
         last_finished_at)
    SELECT u.flow, g.step, sum(g.completed), sum(g.failed), sum(g.retried), sum(g.skipped),
           COALESCE(sum(g.duration_ms), 0), COALESCE(max(g.duration_ms), 0),
           max(g.finished_at)
    FROM jsonb_to_recordset(%(figures)s::jsonb)
        AS g(run_id uuid, step text, completed int, failed int, retried int, skipped int,
             duration_ms numeric, finished_at timestamptz)
    JOIN updated AS u ON u.id = g.run_id
    GROUP BY u.flow, g.step
    ORDER BY u.flow, g.step
    ON CONFLICT (flow, step) DO UPDATE
        SET completed = f.completed + EXCLUDED.completed,
            failed = f.failed + EXCLUDED.failed,
            retried = f.retried + EXCLUDED.retried,
            skipped = f.skipped + EXCLUDED.skipped,
            total_duration_ms = f.total_duration_ms + EXCLUDED.total_duration_ms,
            max_duration_ms = GREATEST(f.max_duration_ms, EXCLUDED.max_duration_ms),
            last_finished_at = GREATEST(f.last_finished_at, EXCLUDED.last_finished_at)
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
