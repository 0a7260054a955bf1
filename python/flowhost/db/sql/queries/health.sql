-- Run health: code versions (which definitions hosts serve, parked runs, migrating runs), stall
-- detection, and a run's state as of an event.

-- name: register_flow_version
-- A definition a host serves, kept by hash with the stall timeout computed from it.
INSERT INTO flowhost.flow_versions (flow, definition_hash, definition, stall_timeout_ms)
VALUES (%(flow)s, %(definition_hash)s, %(definition)s, %(stall_timeout_ms)s)
ON CONFLICT (flow, definition_hash) DO UPDATE
    SET stall_timeout_ms = EXCLUDED.stall_timeout_ms, last_served_at = now();

-- name: served_definitions
-- The definitions of %(flow)s that live hosts (seen within %(stale_after)s seconds) serve, with
-- the names of their steps.
SELECT d.value AS definition_hash, count(*) AS hosts,
       (SELECT COALESCE(array_agg(s->>'name' ORDER BY s->>'name'), '{}')
        FROM flowhost.flow_versions AS v, jsonb_array_elements(v.definition->'steps') AS s
        WHERE v.flow = %(flow)s AND v.definition_hash = d.value) AS steps
FROM flowhost.hosts AS h, jsonb_each_text(h.definitions) AS d
WHERE d.key = %(flow)s AND h.last_seen > now() - make_interval(secs => %(stale_after)s)
GROUP BY d.value
ORDER BY d.value;

-- name: parked_runs
-- Live runs whose definition no live host serves: their steps wait in the queue for a host
-- with their code. `since`: when a host last served that definition, or the run's last
-- activity if later.
WITH served AS (
    SELECT DISTINCT d.key AS flow, d.value AS definition_hash
    FROM flowhost.hosts AS h, jsonb_each_text(h.definitions) AS d
    WHERE h.last_seen > now() - make_interval(secs => %(stale_after)s)
)
SELECT r.id, r.flow, r.status, r.definition_hash,
       GREATEST(v.last_served_at, r.last_activity_at) AS since
FROM flowhost.runs AS r
LEFT JOIN flowhost.flow_versions AS v
    ON v.flow = r.flow AND v.definition_hash = r.definition_hash
WHERE r.status IN ('queued', 'running', 'awaiting')
  AND (%(flow)s::text IS NULL OR r.flow = %(flow)s)
  AND NOT EXISTS (SELECT 1 FROM served AS s
                  WHERE s.flow = r.flow AND s.definition_hash = r.definition_hash)
ORDER BY since, r.id
LIMIT %(limit)s;

-- name: migrate_runs
-- Moves live runs of %(flow)s onto its definition %(to_hash)s, whose steps are %(steps)s: the
-- runs %(run_ids)s, or (null) every live run of the flow on another definition. A run with a
-- scheduled step the new definition lacks stays as it is and comes back with those steps in
-- `missing`. Each run moved gets a flow.migrated event.
WITH candidates AS (
    SELECT r.id, r.definition_hash
    FROM flowhost.runs AS r
    WHERE r.flow = %(flow)s AND r.status IN ('queued', 'running', 'awaiting')
      AND r.definition_hash <> %(to_hash)s
      AND (%(run_ids)s::uuid[] IS NULL OR r.id = ANY (%(run_ids)s::uuid[]))
    ORDER BY r.id
    FOR UPDATE
), missing AS (
    SELECT s.run_id, array_agg(s.name ORDER BY s.name) AS steps
    FROM flowhost.steps AS s
    JOIN candidates AS c ON c.id = s.run_id
    WHERE s.name <> ALL (%(steps)s::text[])
    GROUP BY s.run_id
), moved AS (
    UPDATE flowhost.runs AS r
    SET definition_hash = %(to_hash)s,
        step_count = cardinality(%(steps)s::text[]),
        last_activity_at = clock_timestamp(),
        version = r.version + 1
    FROM candidates AS c
    WHERE r.id = c.id AND NOT EXISTS (SELECT 1 FROM missing AS m WHERE m.run_id = c.id)
    RETURNING r.id
), events AS (
    INSERT INTO flowhost.events (run_id, type, data)
    SELECT c.id, 'flow.migrated',
           jsonb_build_object('from', c.definition_hash, 'to', %(to_hash)s::text,
                              'by', %(by)s::text)
    FROM candidates AS c JOIN moved AS m ON m.id = c.id
)
SELECT c.id, c.definition_hash, m.steps AS missing
FROM candidates AS c LEFT JOIN missing AS m ON m.run_id = c.id
ORDER BY c.id;

-- name: make_run_jobs_due
-- The queued jobs of runs %(run_ids)s (entrypoint %(entrypoint)s) become due now:
-- jobs put back for a host serving the run's definition wait out a delay, which a run that
-- moved onto a served definition need not. PgQueuer's table; its update trigger wakes the
-- hosts. A step job's dedupe key starts with its run id.
UPDATE pgqueuer
SET execute_after = now()
WHERE entrypoint = %(entrypoint)s AND status = 'queued' AND execute_after > now()
  AND split_part(dedupe_key, ':', 1) = ANY (%(run_ids)s::text[]);

-- name: mark_stalled_runs
-- Marks up to %(limit)s runs stalled, in one statement: the runs (with a flow.stalled event
-- {reason, previous_status}) and a step.stalled event per in-flight step; their queued jobs
-- are then stale, and hosts running one of their attempts stop it (NOTIFY flowhost_cancel). A run stalls when it is running or awaiting and nothing happened in it (no
-- transition of the run, no attempt started) for longer than the stall timeout of its
-- definition (%(stall_timeout)s seconds instead, when set). The clock starts no earlier than
-- the oldest live host serving the definition: after a time with no host at all, runs get
-- their full timeout again. Not stalled: parked runs (no live host serves their definition:
-- they wait for their code), runs in a transition (locked rows are skipped), and runs waiting
-- on an await.
WITH served AS (
    SELECT d.key AS flow, d.value AS definition_hash, min(h.started_at) AS serving_since
    FROM flowhost.hosts AS h, jsonb_each_text(h.definitions) AS d
    WHERE h.last_seen > now() - make_interval(secs => %(stale_after)s)
    GROUP BY d.key, d.value
), due AS (
    SELECT r.id, r.flow, r.status AS previous_status, r.last_activity_at, t.timeout,
           clock_timestamp() AS at
    FROM flowhost.runs AS r
    JOIN served AS s ON s.flow = r.flow AND s.definition_hash = r.definition_hash
    LEFT JOIN flowhost.flow_versions AS v
        ON v.flow = r.flow AND v.definition_hash = r.definition_hash
    CROSS JOIN LATERAL (
        SELECT COALESCE(make_interval(secs => %(stall_timeout)s::float8),
                        v.stall_timeout_ms * interval '1 millisecond',
                        make_interval(secs => %(default_stall_timeout)s::float8)) AS timeout
    ) AS t
    WHERE r.status IN ('running', 'awaiting')
      AND GREATEST(r.last_activity_at, s.serving_since) < clock_timestamp() - t.timeout
      AND NOT EXISTS (SELECT 1 FROM flowhost.steps AS st
                      WHERE st.run_id = r.id AND st.status = 'running'
                        AND st.started_at > clock_timestamp() - t.timeout)
      -- A run waiting on an await that is not due yet (it resolves or times out later, or
      -- never) is not stalled; one whose await is overdue is the sweeper's, not stalled either.
      AND NOT EXISTS (SELECT 1 FROM flowhost.awaits AS a
                      WHERE a.run_id = r.id AND a.status = 'waiting')
    ORDER BY r.last_activity_at
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
), described AS (
    SELECT d.*,
           format('nothing happened in the run for longer than its stall timeout (%%s s)',
                  round(extract(epoch FROM d.timeout))) AS reason
    FROM due AS d
), marked AS (
    UPDATE flowhost.runs AS r
    SET status = 'stalled',
        finished_at = d.at,
        error = jsonb_build_object('type', 'RunStalled', 'message', d.reason),
        version = r.version + 1
    FROM described AS d
    WHERE r.id = d.id
), stall_events AS (
    -- One insert, ordered: each run's step.stalled events, then its flow.stalled.
    INSERT INTO flowhost.events (run_id, type, step, attempt, ts, data)
    SELECT run_id, type, step, attempt, at, data
    FROM (
        SELECT s.run_id, 'step.stalled' AS type, s.name AS step, s.attempt, d.at,
               jsonb_build_object('reason', d.reason, 'status', s.status) AS data, 0 AS rank
        FROM flowhost.steps AS s
        JOIN described AS d ON d.id = s.run_id
        WHERE s.status IN ('queued', 'running', 'awaiting')
        UNION ALL
        SELECT id, 'flow.stalled', NULL, NULL, at,
               jsonb_build_object('reason', reason, 'previous_status', previous_status,
                                  'last_activity_at', last_activity_at,
                                  'stall_timeout_s', extract(epoch FROM timeout)),
               1
        FROM described
    ) AS e
    ORDER BY run_id, rank, step
), notified AS (
    -- Hosts running an attempt of a stalled run stop it at once (as for a cancel); its step
    -- stays `running`, for a retry of the run to run again.
    SELECT pg_notify('flowhost_cancel', d.id::text)
    FROM described AS d
    WHERE EXISTS (SELECT 1 FROM flowhost.steps AS s
                  WHERE s.run_id = d.id AND s.status = 'running')
)
SELECT id, flow, previous_status, reason, (SELECT count(*) FROM notified) AS notified
FROM described ORDER BY id;

-- name: state_events_until
-- The state.set / state.delete events of a run up to and including event %(event_id)s.
SELECT id, type, data FROM flowhost.events
WHERE run_id = %(run_id)s AND id <= %(event_id)s AND type IN ('state.set', 'state.delete')
ORDER BY id;
