-- 0012: runs over time for the dashboard's overview. count_runs, which keeps flow_stats, also
-- counts runs started and ended per minute and flow in run_activity, so that the chart reads a
-- few hundred rows whatever the number of runs (no count over the runs table).

-- Runs started and ended per minute and flow (the dashboard's runs over time), kept by
-- count_runs with flow_stats. Hosts prune old minutes (flowhost.engine.housekeeping).
CREATE TABLE flowhost.run_activity (
    minute timestamptz NOT NULL,
    flow text NOT NULL,
    started bigint NOT NULL DEFAULT 0,
    completed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    canceled bigint NOT NULL DEFAULT 0,
    stalled bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, flow)
);

-- The minute a time falls in, whatever the session's time zone.
CREATE FUNCTION flowhost.activity_minute(at timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_bin('1 minute', at, timestamptz '2000-01-01 00:00:00+00');

CREATE OR REPLACE FUNCTION flowhost.count_runs() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO flowhost.flow_stats AS f
            (flow, total, queued, running, awaiting, completed, failed, canceled, stalled,
             total_duration_ms, max_duration_ms, last_run_at, last_completed_at)
        SELECT flow, count(*),
               count(*) FILTER (WHERE status = 'queued'),
               count(*) FILTER (WHERE status = 'running'),
               count(*) FILTER (WHERE status = 'awaiting'),
               count(*) FILTER (WHERE status = 'completed'),
               count(*) FILTER (WHERE status = 'failed'),
               count(*) FILTER (WHERE status = 'canceled'),
               count(*) FILTER (WHERE status = 'stalled'),
               COALESCE(sum(flowhost.duration_ms(created_at, finished_at))
                        FILTER (WHERE status = 'completed'), 0),
               COALESCE(max(flowhost.duration_ms(created_at, finished_at))
                        FILTER (WHERE status = 'completed'), 0),
               max(created_at),
               max(finished_at) FILTER (WHERE status = 'completed')
        FROM new_runs GROUP BY flow ORDER BY flow
        ON CONFLICT (flow) DO UPDATE
            SET total = f.total + EXCLUDED.total,
                queued = f.queued + EXCLUDED.queued,
                running = f.running + EXCLUDED.running,
                awaiting = f.awaiting + EXCLUDED.awaiting,
                completed = f.completed + EXCLUDED.completed,
                failed = f.failed + EXCLUDED.failed,
                canceled = f.canceled + EXCLUDED.canceled,
                stalled = f.stalled + EXCLUDED.stalled,
                total_duration_ms = f.total_duration_ms + EXCLUDED.total_duration_ms,
                max_duration_ms = GREATEST(f.max_duration_ms, EXCLUDED.max_duration_ms),
                last_run_at = GREATEST(f.last_run_at, EXCLUDED.last_run_at),
                last_completed_at = GREATEST(f.last_completed_at, EXCLUDED.last_completed_at);
        -- Runs over time (the dashboard's chart): each run starts in the minute it was
        -- created; one inserted already over (an import) also ends in the minute it finished.
        -- After flow_stats: a statement holds a flow's row there before its activity rows.
        INSERT INTO flowhost.run_activity AS a
            (minute, flow, started, completed, failed, canceled, stalled)
        SELECT m.minute, m.flow,
               count(*) FILTER (WHERE m.status IS NULL),
               count(*) FILTER (WHERE m.status = 'completed'),
               count(*) FILTER (WHERE m.status = 'failed'),
               count(*) FILTER (WHERE m.status = 'canceled'),
               count(*) FILTER (WHERE m.status = 'stalled')
        FROM new_runs AS n
        CROSS JOIN LATERAL (
            VALUES (flowhost.activity_minute(n.created_at), n.flow, NULL::text),
                   (flowhost.activity_minute(COALESCE(n.finished_at, n.created_at)), n.flow,
                    n.status)
        ) AS m (minute, flow, status)
        WHERE m.status IS NULL OR m.status IN ('completed', 'failed', 'canceled', 'stalled')
        GROUP BY m.flow, m.minute ORDER BY m.flow, m.minute
        ON CONFLICT (minute, flow) DO UPDATE
            SET started = a.started + EXCLUDED.started,
                completed = a.completed + EXCLUDED.completed,
                failed = a.failed + EXCLUDED.failed,
                canceled = a.canceled + EXCLUDED.canceled,
                stalled = a.stalled + EXCLUDED.stalled;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Each run that changed status leaves its old count (-1) and joins its new one (+1);
        -- one that completes adds its duration.
        INSERT INTO flowhost.flow_stats AS f
            (flow, total, queued, running, awaiting, completed, failed, canceled, stalled,
             total_duration_ms, max_duration_ms, last_run_at, last_completed_at)
        SELECT m.flow, 0,
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'queued'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'running'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'awaiting'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'completed'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'failed'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'canceled'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'stalled'), 0),
               COALESCE(sum(flowhost.duration_ms(m.created_at, m.finished_at))
                        FILTER (WHERE m.n = 1 AND m.status = 'completed'), 0),
               COALESCE(max(flowhost.duration_ms(m.created_at, m.finished_at))
                        FILTER (WHERE m.n = 1 AND m.status = 'completed'), 0),
               NULL::timestamptz,
               max(m.finished_at) FILTER (WHERE m.n = 1 AND m.status = 'completed')
        FROM new_runs AS n
        JOIN old_runs AS o ON o.id = n.id
        CROSS JOIN LATERAL (
            VALUES (n.flow, n.status, 1, n.created_at, n.finished_at),
                   (o.flow, o.status, -1, o.created_at, o.finished_at)
        ) AS m (flow, status, n, created_at, finished_at)
        WHERE n.status <> o.status OR n.flow <> o.flow
        GROUP BY m.flow ORDER BY m.flow
        ON CONFLICT (flow) DO UPDATE
            SET queued = f.queued + EXCLUDED.queued,
                running = f.running + EXCLUDED.running,
                awaiting = f.awaiting + EXCLUDED.awaiting,
                completed = f.completed + EXCLUDED.completed,
                failed = f.failed + EXCLUDED.failed,
                canceled = f.canceled + EXCLUDED.canceled,
                stalled = f.stalled + EXCLUDED.stalled,
                total_duration_ms = f.total_duration_ms + EXCLUDED.total_duration_ms,
                max_duration_ms = GREATEST(f.max_duration_ms, EXCLUDED.max_duration_ms),
                last_completed_at = GREATEST(f.last_completed_at, EXCLUDED.last_completed_at);
        -- Runs that ended (again, for a retried run that ends again), in the minute they did.
        INSERT INTO flowhost.run_activity AS a
            (minute, flow, started, completed, failed, canceled, stalled)
        SELECT flowhost.activity_minute(COALESCE(n.finished_at, clock_timestamp())), n.flow, 0,
               count(*) FILTER (WHERE n.status = 'completed'),
               count(*) FILTER (WHERE n.status = 'failed'),
               count(*) FILTER (WHERE n.status = 'canceled'),
               count(*) FILTER (WHERE n.status = 'stalled')
        FROM new_runs AS n
        JOIN old_runs AS o ON o.id = n.id
        WHERE n.status <> o.status AND n.status IN ('completed', 'failed', 'canceled', 'stalled')
        GROUP BY 2, 1 ORDER BY 2, 1
        ON CONFLICT (minute, flow) DO UPDATE
            SET completed = a.completed + EXCLUDED.completed,
                failed = a.failed + EXCLUDED.failed,
                canceled = a.canceled + EXCLUDED.canceled,
                stalled = a.stalled + EXCLUDED.stalled;
    ELSE
        -- Deleted runs leave their counts; the longest duration and the times stay.
        UPDATE flowhost.flow_stats AS f
        SET total = f.total - d.total,
            queued = f.queued - d.queued,
            running = f.running - d.running,
            awaiting = f.awaiting - d.awaiting,
            completed = f.completed - d.completed,
            failed = f.failed - d.failed,
            canceled = f.canceled - d.canceled,
            stalled = f.stalled - d.stalled,
            total_duration_ms = f.total_duration_ms - d.total_duration_ms
        FROM (
            SELECT flow, count(*) AS total,
                   count(*) FILTER (WHERE status = 'queued') AS queued,
                   count(*) FILTER (WHERE status = 'running') AS running,
                   count(*) FILTER (WHERE status = 'awaiting') AS awaiting,
                   count(*) FILTER (WHERE status = 'completed') AS completed,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status = 'canceled') AS canceled,
                   count(*) FILTER (WHERE status = 'stalled') AS stalled,
                   COALESCE(sum(flowhost.duration_ms(created_at, finished_at))
                            FILTER (WHERE status = 'completed'), 0) AS total_duration_ms
            FROM old_runs GROUP BY flow ORDER BY flow
        ) AS d
        WHERE f.flow = d.flow;
    END IF;
    RETURN NULL;
END
$$;

-- What is there already counts from now on: the runs present are counted where they started
-- (and ended), as the trigger would have.
INSERT INTO flowhost.run_activity (minute, flow, started, completed, failed, canceled, stalled)
SELECT m.minute, m.flow,
       count(*) FILTER (WHERE m.status IS NULL),
       count(*) FILTER (WHERE m.status = 'completed'),
       count(*) FILTER (WHERE m.status = 'failed'),
       count(*) FILTER (WHERE m.status = 'canceled'),
       count(*) FILTER (WHERE m.status = 'stalled')
FROM flowhost.runs AS r
CROSS JOIN LATERAL (
    VALUES (flowhost.activity_minute(r.created_at), r.flow, NULL::text),
           (flowhost.activity_minute(COALESCE(r.finished_at, r.created_at)), r.flow, r.status)
) AS m (minute, flow, status)
WHERE m.status IS NULL OR m.status IN ('completed', 'failed', 'canceled', 'stalled')
GROUP BY m.flow, m.minute;
