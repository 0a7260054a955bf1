-- Flow control: limits across hosts, waiting lists, delayed/deduplicated/debounced starts, and
-- the running-flow queries of ctx.flow. The decisions themselves are the fc_* functions of
-- migration 0005; flowhost.engine.scheduling is the only caller of the gate queries.

-- name: lock_flow_controls
-- Locks the control rows of the batch's limited flows, in name order, before anything else.
-- %(flows)s: [{"flow", "limits"}].
SELECT flowhost.fc_lock_flows(%(flows)s::jsonb) AS locked;

-- name: admit_runs
-- New (or due) runs: each starts now or waits for a slot. %(runs)s: [{run_id, key, priority,
-- announce}].
SELECT admitted_run, admitted
FROM flowhost.fc_admit_runs(%(flow)s, %(entry)s, %(limits)s::jsonb, %(runs)s::jsonb);

-- name: schedule_limited_steps
-- Steps that became ready, among them some with a limit: their slots or the waiting list.
-- %(steps)s: [{run_id, step, attempt, key, priority}].
SELECT flowhost.fc_schedule_steps(%(flow)s, %(limits)s::jsonb, %(steps)s::jsonb) AS waiting;

-- name: register_flow_controls
SELECT flowhost.fc_register(%(flow)s, %(limits)s::jsonb) AS granted;

-- name: grant_waiting
SELECT flowhost.fc_grant_waiting() AS granted;

-- name: take_due_start
SELECT due, wait_seconds, run_key, run_priority FROM flowhost.fc_take_due_start(%(run_id)s);

-- name: claim_dedupe_key
-- Takes `key` for a new run for %(window)s seconds, unless a run holds it and it has not
-- expired; returns nothing then (the row stays locked until this transaction ends).
INSERT INTO flowhost.dedupe_keys AS d (flow, key, run_id, expires_at)
VALUES (%(flow)s, %(key)s, %(run_id)s, now() + make_interval(secs => %(window)s::float8))
ON CONFLICT (flow, key) DO UPDATE
    SET run_id = EXCLUDED.run_id, expires_at = EXCLUDED.expires_at
    WHERE d.expires_at <= now()
RETURNING run_id;

-- name: run_of_dedupe_key
SELECT run_id FROM flowhost.dedupe_keys WHERE flow = %(flow)s AND key = %(key)s;

-- name: forget_expired_dedupe_keys
-- A few expired keys per start that uses one: the table stays as small as its live keys.
DELETE FROM flowhost.dedupe_keys
WHERE (flow, key) IN (
    SELECT flow, key FROM flowhost.dedupe_keys
    WHERE expires_at < now() AND NOT (flow = %(flow)s AND key = %(key)s)
    LIMIT 8
    FOR UPDATE SKIP LOCKED
);

-- name: claim_debounce_key
-- The pending run of `key`, its start pushed back to now + %(window)s seconds; or, when no run
-- of the key is pending, %(run_id)s (the caller then creates it).
INSERT INTO flowhost.debounce_keys AS d (flow, key, run_id, start_at)
VALUES (%(flow)s, %(key)s, %(run_id)s, now() + make_interval(secs => %(window)s::float8))
ON CONFLICT (flow, key) DO UPDATE SET start_at = EXCLUDED.start_at
RETURNING run_id, start_at;

-- name: replace_pending_input
-- A debounced start within the window: the pending run starts later, with the new input.
WITH run_row AS (
    UPDATE flowhost.runs
    SET input = %(input)s::jsonb, concurrency_key = %(key)s, start_at = %(start_at)s,
        version = version + 1
    WHERE id = %(run_id)s AND status = 'queued'
    RETURNING id
), entry_row AS (
    UPDATE flowhost.steps SET input = %(input)s::jsonb
    WHERE run_id = (SELECT id FROM run_row) AND status = 'queued'
), event AS (
    INSERT INTO flowhost.events (run_id, type, data)
    SELECT id, 'flow.debounced',
           jsonb_build_object('input', %(input)s::jsonb, 'start_at', %(start_at)s::timestamptz)
    FROM run_row
)
SELECT count(*) AS replaced FROM run_row;

-- name: running_runs
-- ctx.flow.running: live runs of a flow (oldest first), the calling run and `excluded` left out.
SELECT jsonb_build_object(
           'run_id', id, 'flow', flow, 'status', status, 'started_at', created_at,
           'step_count', step_count, 'completed_steps', completed_steps,
           'parent_run_id', parent_run_id) AS run
FROM flowhost.runs
WHERE flow = %(flow)s AND status IN ('queued', 'running', 'awaiting')
  AND id <> ALL (%(excluded)s::uuid[])
ORDER BY created_at, id
LIMIT %(limit)s;

-- name: flow_stats_of
-- ctx.flow.stats: the flow's row of flow_stats as JSON (times as ISO 8601 text), if any.
SELECT to_jsonb(s) AS stats FROM flowhost.flow_stats AS s WHERE s.flow = %(flow)s;

-- name: slots_of_flow
-- What a flow's slots hold now (tests and `flowhost` displays).
SELECT step, key, held, last_granted_at FROM flowhost.flow_slots
WHERE flow = %(flow)s ORDER BY step, key;

-- name: hold_run
-- A retried or replayed run takes its run slots at once (flowhost.fc_hold_run).
SELECT flowhost.fc_hold_run(%(flow)s, %(limits)s::jsonb, %(run_id)s, %(key)s);
