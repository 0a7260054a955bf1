-- Run control from steps and operators: cancel, is-running queries, start keys.

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

-- name: claim_start_key
-- Takes `key` for a new run of `flow`; returns nothing when a run already holds it.
INSERT INTO flowhost.start_keys (flow, key, run_id)
VALUES (%(flow)s, %(key)s, %(run_id)s)
ON CONFLICT (flow, key) DO NOTHING
RETURNING run_id;

-- name: run_of_start_key
SELECT run_id FROM flowhost.start_keys WHERE flow = %(flow)s AND key = %(key)s;
