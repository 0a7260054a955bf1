-- 0007: run health. Flow statistics kept by a trigger on the runs, per-step figures, the time of
-- each run's last activity (stall detection), and the flow definitions hosts serve (code
-- versions).

-- When something last happened in the run: a step ended, its status changed. Runs that stay
-- live without activity for longer than their flow's stall timeout are marked `stalled`.
ALTER TABLE flowhost.runs
    ADD COLUMN last_activity_at timestamptz NOT NULL DEFAULT clock_timestamp();

-- A change of status is activity, whoever makes it.
CREATE FUNCTION flowhost.touch_run() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_activity_at := clock_timestamp();
    RETURN NEW;
END
$$;
CREATE TRIGGER runs_touch BEFORE UPDATE OF status ON flowhost.runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION flowhost.touch_run();

-- Durations in whole milliseconds, floored: the statistics, their rebuild from events and the
-- percentiles all count a duration the same way.
CREATE FUNCTION flowhost.duration_ms(started timestamptz, finished timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN floor(extract(epoch FROM finished - started) * 1000)::bigint;

-- The longest completed run (durations count completed runs only).
ALTER TABLE flowhost.flow_stats ADD COLUMN max_duration_ms bigint NOT NULL DEFAULT 0;

-- Start from the runs as they are; the trigger below moves the counts from now on.
INSERT INTO flowhost.flow_stats AS f (flow) SELECT DISTINCT flow FROM flowhost.runs
    ON CONFLICT (flow) DO NOTHING;
UPDATE flowhost.flow_stats AS f
SET total = c.total, queued = c.queued, running = c.running, awaiting = c.awaiting,
    completed = c.completed, failed = c.failed, canceled = c.canceled, stalled = c.stalled,
    total_duration_ms = c.total_duration_ms, max_duration_ms = c.max_duration_ms,
    last_run_at = c.last_run_at, last_completed_at = c.last_completed_at
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
                    FILTER (WHERE status = 'completed'), 0) AS total_duration_ms,
           COALESCE(max(flowhost.duration_ms(created_at, finished_at))
                    FILTER (WHERE status = 'completed'), 0) AS max_duration_ms,
           max(created_at) AS last_run_at,
           max(finished_at) FILTER (WHERE status = 'completed') AS last_completed_at
    FROM flowhost.runs GROUP BY flow
) AS c
WHERE f.flow = c.flow;

-- Counts by status, kept by the database itself: every statement that inserts, deletes or
-- changes the status of runs adds its deltas per flow in one upsert, whatever its author
-- remembered. Flows are upserted in name order, so that two statements cannot deadlock.
CREATE FUNCTION flowhost.count_runs() RETURNS trigger
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
CREATE TRIGGER runs_count_inserted AFTER INSERT ON flowhost.runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION flowhost.count_runs();
CREATE TRIGGER runs_count_updated AFTER UPDATE ON flowhost.runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION flowhost.count_runs();
CREATE TRIGGER runs_count_deleted AFTER DELETE ON flowhost.runs
    REFERENCING OLD TABLE AS old_runs
    FOR EACH STATEMENT EXECUTE FUNCTION flowhost.count_runs();

-- Per-step figures: a projection of step.completed / step.failed / step.retry / step.skipped
-- events, written by the statements that end attempts. Durations are of completed attempts,
-- in milliseconds with microseconds.
CREATE TABLE flowhost.step_stats (
    flow text NOT NULL,
    step text NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    retried bigint NOT NULL DEFAULT 0,
    skipped bigint NOT NULL DEFAULT 0,
    total_duration_ms numeric NOT NULL DEFAULT 0,
    max_duration_ms numeric NOT NULL DEFAULT 0,
    last_finished_at timestamptz,
    PRIMARY KEY (flow, step)
);
INSERT INTO flowhost.step_stats AS f
    (flow, step, completed, failed, retried, skipped, total_duration_ms, max_duration_ms,
     last_finished_at)
SELECT r.flow, s.name,
       count(*) FILTER (WHERE s.status = 'completed'),
       count(*) FILTER (WHERE s.status = 'failed'),
       COALESCE(sum(GREATEST(s.attempt - 1, 0)), 0),
       count(*) FILTER (WHERE s.status = 'skipped'),
       COALESCE(sum(extract(epoch FROM s.finished_at - s.started_at) * 1000)
                FILTER (WHERE s.status = 'completed'), 0),
       COALESCE(max(extract(epoch FROM s.finished_at - s.started_at) * 1000)
                FILTER (WHERE s.status = 'completed'), 0),
       max(s.finished_at) FILTER (WHERE s.status IN ('completed', 'failed'))
FROM flowhost.steps AS s JOIN flowhost.runs AS r ON r.id = s.run_id
GROUP BY r.flow, s.name;

-- Every definition of a flow that a host ever served, by hash: what a run's definition_hash
-- names, with the stall timeout computed from it. `last_served_at` is refreshed by the hosts
-- serving it (at most every few seconds).
CREATE TABLE flowhost.flow_versions (
    flow text NOT NULL,
    definition_hash text NOT NULL,
    definition jsonb NOT NULL,
    stall_timeout_ms bigint NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_served_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow, definition_hash)
);
INSERT INTO flowhost.flow_versions (flow, definition_hash, definition, stall_timeout_ms,
                                    registered_at, last_served_at)
SELECT name, definition_hash, definition, 1800000, registered_at, updated_at FROM flowhost.flows;

-- Which definition (hash) of each flow a host serves: flow name -> definition hash.
ALTER TABLE flowhost.hosts ADD COLUMN definitions jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Flow control admits a queued run without counting it by hand: the runs_count_updated trigger
-- moves it from queued to running.
CREATE OR REPLACE FUNCTION flowhost.fc_start_run(
    control flowhost.flow_controls, p_run uuid, p_entry text, p_key text, p_priority integer,
    p_announce boolean
) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE flowhost.runs SET status = 'running', start_at = NULL, version = version + 1
    WHERE id = p_run AND status = 'queued';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_announce THEN
        INSERT INTO flowhost.events (run_id, type, data)
        VALUES (p_run, 'flow.admitted', '{}'::jsonb);
    END IF;
    PERFORM flowhost.fc_gate_step(control, p_run, p_entry, 1, p_key, p_priority);
END
$$;
