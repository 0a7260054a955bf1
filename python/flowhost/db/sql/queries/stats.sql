-- Statistics: flow_stats (kept by the runs_count_* triggers), step_stats (kept by
-- record_progress), durations, and their rebuild from the event log.

-- name: flow_statistics
SELECT flow, total, queued, running, awaiting, completed, failed, canceled, stalled,
       total_duration_ms, max_duration_ms, last_run_at, last_completed_at
FROM flowhost.flow_stats
WHERE %(flow)s::text IS NULL OR flow = %(flow)s
ORDER BY flow;

-- name: step_statistics
SELECT flow, step, completed, failed, retried, skipped, total_duration_ms, max_duration_ms,
       last_finished_at
FROM flowhost.step_stats
WHERE %(flow)s::text IS NULL OR flow = %(flow)s
ORDER BY flow, step;

-- name: flow_duration_percentiles
-- p50 and p95 of the durations (ms) of the last %(last)s completed runs of %(flow)s.
SELECT count(*) AS runs,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95
FROM (
    SELECT flowhost.duration_ms(created_at, finished_at) AS duration_ms
    FROM flowhost.runs
    WHERE flow = %(flow)s AND status = 'completed'
    ORDER BY created_at DESC
    LIMIT %(last)s
) AS completed;

-- name: lock_statistics
-- Writers are held off while the statistics are rebuilt. step_stats first: every writer that
-- touches both takes step_stats rows before the flow_stats row.
LOCK TABLE flowhost.step_stats, flowhost.flow_stats IN SHARE ROW EXCLUSIVE MODE;

-- name: flow_statistics_from_events
-- flow_stats recomputed from the events alone. A run's status is the one its last lifecycle
-- event set (%(statuses)s: event type -> run status); a run that is `running` by that is
-- `awaiting` while an await opened since (%(await_opened)s) is not closed (%(await_closed)s).
-- Durations run from flow.started to flow.completed.
WITH started AS (
    SELECT run_id, data->>'flow' AS flow, ts FROM flowhost.events WHERE type = 'flow.started'
), lifecycle AS (
    SELECT DISTINCT ON (e.run_id) e.run_id, e.id, m.status
    FROM flowhost.events AS e
    JOIN jsonb_each_text(%(statuses)s::jsonb) AS m (type, status) ON m.type = e.type
    ORDER BY e.run_id, e.id DESC
), waiting AS (
    SELECT e.run_id,
           count(*) FILTER (WHERE e.type = ANY (%(await_opened)s::text[]))
           - count(*) FILTER (WHERE e.type = ANY (%(await_closed)s::text[])) AS awaits
    FROM flowhost.events AS e
    JOIN lifecycle AS l ON l.run_id = e.run_id AND l.status = 'running' AND e.id > l.id
    WHERE e.type = ANY (%(await_opened)s::text[] || %(await_closed)s::text[])
    GROUP BY e.run_id
), statuses AS (
    SELECT l.run_id,
           CASE WHEN l.status = 'running' AND w.awaits > 0 THEN 'awaiting'
                ELSE l.status END AS status
    FROM lifecycle AS l LEFT JOIN waiting AS w ON w.run_id = l.run_id
), counts AS (
    SELECT s.flow, count(*) AS total,
           count(*) FILTER (WHERE t.status = 'queued') AS queued,
           count(*) FILTER (WHERE t.status = 'running') AS running,
           count(*) FILTER (WHERE t.status = 'awaiting') AS awaiting,
           count(*) FILTER (WHERE t.status = 'completed') AS completed,
           count(*) FILTER (WHERE t.status = 'failed') AS failed,
           count(*) FILTER (WHERE t.status = 'canceled') AS canceled,
           count(*) FILTER (WHERE t.status = 'stalled') AS stalled,
           max(s.ts) AS last_run_at
    FROM started AS s LEFT JOIN statuses AS t ON t.run_id = s.run_id
    GROUP BY s.flow
), durations AS (
    SELECT s.flow,
           sum(flowhost.duration_ms(s.ts, e.ts)) AS total_duration_ms,
           max(flowhost.duration_ms(s.ts, e.ts)) AS max_duration_ms,
           max(e.ts) AS last_completed_at
    FROM flowhost.events AS e JOIN started AS s ON s.run_id = e.run_id
    WHERE e.type = 'flow.completed'
    GROUP BY s.flow
)
SELECT c.flow, c.total, c.queued, c.running, c.awaiting, c.completed, c.failed, c.canceled,
       c.stalled, COALESCE(d.total_duration_ms, 0)::bigint AS total_duration_ms,
       COALESCE(d.max_duration_ms, 0) AS max_duration_ms, c.last_run_at, d.last_completed_at
FROM counts AS c LEFT JOIN durations AS d ON d.flow = c.flow
ORDER BY c.flow;

-- name: step_statistics_from_events
-- step_stats recomputed from the events alone (%(figures)s: step event type -> the figure it
-- adds to). Events copied into a replayed run (`replayed_from`) were counted in their own run.
WITH flows AS (
    SELECT run_id, data->>'flow' AS flow FROM flowhost.events WHERE type = 'flow.started'
)
SELECT f.flow, e.step,
       count(*) FILTER (WHERE m.figure = 'completed') AS completed,
       count(*) FILTER (WHERE m.figure = 'failed') AS failed,
       count(*) FILTER (WHERE m.figure = 'retried') AS retried,
       count(*) FILTER (WHERE m.figure = 'skipped') AS skipped,
       COALESCE(sum((e.data->>'duration_ms')::numeric) FILTER (WHERE m.figure = 'completed'),
                0) AS total_duration_ms,
       COALESCE(max((e.data->>'duration_ms')::numeric) FILTER (WHERE m.figure = 'completed'),
                0) AS max_duration_ms,
       max((e.data->>'finished_at')::timestamptz) AS last_finished_at
FROM flowhost.events AS e
JOIN jsonb_each_text(%(figures)s::jsonb) AS m (type, figure) ON m.type = e.type
JOIN flows AS f ON f.run_id = e.run_id
WHERE e.step IS NOT NULL AND NOT e.data ? 'replayed_from'
GROUP BY f.flow, e.step
ORDER BY f.flow, e.step;

-- name: replace_flow_statistics
-- flow_stats becomes %(rows)s (a JSON array of its rows); flows not in it count nothing.
WITH given AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS g(flow text, total bigint, queued bigint, running bigint, awaiting bigint,
             completed bigint, failed bigint, canceled bigint, stalled bigint,
             total_duration_ms bigint, max_duration_ms bigint, last_run_at timestamptz,
             last_completed_at timestamptz)
), cleared AS (
    UPDATE flowhost.flow_stats
    SET total = 0, queued = 0, running = 0, awaiting = 0, completed = 0, failed = 0,
        canceled = 0, stalled = 0, total_duration_ms = 0, max_duration_ms = 0,
        last_run_at = NULL, last_completed_at = NULL
    WHERE flow NOT IN (SELECT flow FROM given)
)
INSERT INTO flowhost.flow_stats AS f
    (flow, total, queued, running, awaiting, completed, failed, canceled, stalled,
     total_duration_ms, max_duration_ms, last_run_at, last_completed_at)
SELECT flow, total, queued, running, awaiting, completed, failed, canceled, stalled,
       total_duration_ms, max_duration_ms, last_run_at, last_completed_at
FROM given
ON CONFLICT (flow) DO UPDATE
    SET total = EXCLUDED.total, queued = EXCLUDED.queued, running = EXCLUDED.running,
        awaiting = EXCLUDED.awaiting, completed = EXCLUDED.completed,
        failed = EXCLUDED.failed, canceled = EXCLUDED.canceled, stalled = EXCLUDED.stalled,
        total_duration_ms = EXCLUDED.total_duration_ms,
        max_duration_ms = EXCLUDED.max_duration_ms, last_run_at = EXCLUDED.last_run_at,
        last_completed_at = EXCLUDED.last_completed_at;

-- name: replace_step_statistics
-- step_stats becomes %(rows)s (a JSON array of its rows).
WITH given AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS g(flow text, step text, completed bigint, failed bigint, retried bigint,
             skipped bigint, total_duration_ms numeric, max_duration_ms numeric,
             last_finished_at timestamptz)
), cleared AS (
    DELETE FROM flowhost.step_stats AS s
    WHERE NOT EXISTS (SELECT 1 FROM given AS g WHERE g.flow = s.flow AND g.step = s.step)
)
INSERT INTO flowhost.step_stats AS f
    (flow, step, completed, failed, retried, skipped, total_duration_ms, max_duration_ms,
     last_finished_at)
SELECT flow, step, completed, failed, retried, skipped, total_duration_ms, max_duration_ms,
       last_finished_at
FROM given
ON CONFLICT (flow, step) DO UPDATE
    SET completed = EXCLUDED.completed, failed = EXCLUDED.failed, retried = EXCLUDED.retried,
        skipped = EXCLUDED.skipped, total_duration_ms = EXCLUDED.total_duration_ms,
        max_duration_ms = EXCLUDED.max_duration_ms,
        last_finished_at = EXCLUDED.last_finished_at;
