-- Awaits: registering, resolving and timing out the waits of steps (flowhost.engine.awaits).
-- Every change to an await happens under the lock of its run's row (lock the run first, then
-- the await), so that a webhook call, an event, the sweeper and a step's end never race.

-- name: register_awaits
-- Registers a batch of awaits and appends their await.registered events (no token, no URL).
-- %(awaits)s is a JSON array; `delay`/`timeout` are seconds from now (the database's clock),
-- `resolve_at` an absolute time (schedules). An await already registered is left alone.
-- Notifies the sweepers when an await is due before every other waiting one, so that a
-- sleeping sweeper wakes up for it.
WITH wanted AS (
    SELECT w.*
    FROM jsonb_to_recordset(%(awaits)s::jsonb)
        AS w(run_id uuid, step text, position text, type text, config jsonb, event_name text,
             match jsonb, token text, method text, delay float8, resolve_at timestamptz,
             timeout float8, held jsonb, unresolved jsonb)
), inserted AS (
    INSERT INTO flowhost.awaits (run_id, step, position, type, config, event_name, match, token,
                                 method, resolve_at, timeout_at, held)
    SELECT run_id, step, position, type, config, event_name, COALESCE(match, '{}'::jsonb),
           token, method,
           COALESCE(resolve_at, clock_timestamp() + make_interval(secs => delay)),
           clock_timestamp() + make_interval(secs => timeout),
           held
    FROM wanted
    ON CONFLICT (run_id, step, position) DO NOTHING
    RETURNING id, run_id, step, position, type, registration, event_name, method, resolve_at,
              timeout_at, due_at
), event_rows AS (
    INSERT INTO flowhost.events (run_id, type, step, data)
    SELECT i.run_id, 'await.registered', i.step,
           jsonb_strip_nulls(jsonb_build_object(
               'type', i.type, 'position', i.position, 'registration', i.registration,
               'event', i.event_name, 'method', i.method,
               'resolve_at', i.resolve_at, 'timeout_at', i.timeout_at,
               'unresolved', w.unresolved))
    FROM inserted AS i
    JOIN wanted AS w ON w.run_id = i.run_id AND w.step = i.step AND w.position = i.position
), woken AS (
    SELECT pg_notify('flowhost_awaits', i.due_at::text)
    FROM (SELECT min(due_at) AS due_at FROM inserted) AS i
    WHERE i.due_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM flowhost.awaits AS o
                      WHERE o.status = 'waiting' AND o.due_at <= i.due_at)
)
SELECT i.id, i.run_id, i.step, i.position, i.type, i.registration, i.resolve_at, i.timeout_at,
       (SELECT count(*) FROM woken) AS woken
FROM inserted AS i;

-- name: register_await_again
-- timeoutAction "retry": the same await, registered once more with fresh times.
UPDATE flowhost.awaits
SET registration = registration + 1,
    resolve_at = COALESCE(%(resolve_at)s::timestamptz,
                          clock_timestamp() + make_interval(secs => %(delay)s::float8)),
    timeout_at = clock_timestamp() + make_interval(secs => %(timeout)s::float8)
WHERE id = %(id)s AND status = 'waiting'
RETURNING registration, resolve_at, timeout_at, due_at;

-- name: find_event_awaits
-- The waiting awaits that published events resolve: same name, and each field of the await's
-- `match` equal in the payload (the payload contains the match, and each match value contains
-- the payload's value of its field: equal, for objects and arrays too). %(events)s is a JSON array of {"i", "name", "payload"}; returns
-- which event (i) matches which await. Index only, whatever the table holds: awaits of the
-- name that take any payload, and (GIN) awaits whose match holds one of the payload's
-- top-level fields. The lateral subqueries are fenced (OFFSET 0) so that the planner, which
-- cannot tell how few events a batch holds, looks up each one rather than scanning.
WITH published AS MATERIALIZED (
    SELECT e.i, e.name, COALESCE(e.payload, 'null'::jsonb) AS payload
    FROM jsonb_to_recordset(%(events)s::jsonb) AS e(i int, name text, payload jsonb)
)
SELECT p.i, a.id, a.run_id
FROM published AS p
CROSS JOIN LATERAL (
    SELECT w.id, w.run_id FROM flowhost.awaits AS w
    WHERE w.status = 'waiting' AND w.event_name IS NOT NULL AND w.match = '{}'::jsonb
      AND w.event_name = p.name
    OFFSET 0
) AS a
UNION
SELECT p.i, a.id, a.run_id
FROM published AS p
CROSS JOIN LATERAL jsonb_each(
    CASE WHEN jsonb_typeof(p.payload) = 'object' THEN p.payload ELSE '{}'::jsonb END
) AS field (key, value)
CROSS JOIN LATERAL (
    SELECT w.id, w.run_id, w.event_name, w.match FROM flowhost.awaits AS w
    WHERE w.status = 'waiting' AND w.event_name IS NOT NULL AND w.match <> '{}'::jsonb
      AND w.match @> jsonb_build_object(field.key, field.value)
    OFFSET 0
) AS a
WHERE a.event_name = p.name AND p.payload @> a.match
ORDER BY 1, 2;

-- name: lock_await_runs
-- Locks runs whose awaits are about to change, in id order (so that two transactions never
-- wait on each other), and tells which are still live.
SELECT id, flow, status, emitted, priority, concurrency_key FROM flowhost.runs
WHERE id = ANY (%(run_ids)s::uuid[])
ORDER BY id
FOR UPDATE;

-- name: awaits_for_update
-- Awaits by id, still waiting, with everything their resolution needs; locked (their runs
-- are locked first).
SELECT id, run_id, step, position, type, status, registration, config, event_name, match,
       token, method, resolve_at, timeout_at, held, created_at
FROM flowhost.awaits
WHERE id = ANY (%(ids)s::bigint[]) AND status = 'waiting'
ORDER BY id
FOR UPDATE;

-- name: await_of_token
SELECT id, run_id FROM flowhost.awaits WHERE token = %(token)s;

-- name: await_of_token_for_update
SELECT a.id, a.run_id, a.step, a.position, a.type, a.status, a.registration, a.config,
       a.event_name, a.match, a.token, a.method, a.resolve_at, a.timeout_at, a.held,
       a.created_at, a.timeout_at <= clock_timestamp() AS overdue
FROM flowhost.awaits AS a
WHERE a.token = %(token)s
FOR UPDATE;

-- name: await_of_step
SELECT id, run_id, step, position, type, status, registration, config, token, method,
       resolve_at, timeout_at, held, resolution
FROM flowhost.awaits
WHERE run_id = %(run_id)s AND step = %(step)s AND position = %(position)s;

-- name: settle_await
-- Ends a waiting await: resolved, timed out (its data: null for "continue") or canceled.
UPDATE flowhost.awaits
SET status = %(status)s, resolution = %(resolution)s, resolved_at = clock_timestamp()
WHERE id = %(id)s AND status = 'waiting'
RETURNING id;

-- name: cancel_awaits_of_runs
-- The waiting awaits of runs that are over: nothing can resolve them any more.
UPDATE flowhost.awaits
SET status = 'canceled', resolved_at = clock_timestamp()
WHERE run_id = ANY (%(run_ids)s::uuid[]) AND status = 'waiting'
RETURNING id;

-- name: queue_awaited_step
-- An await before a step resolved: the step is queued with what it resolved with.
UPDATE flowhost.steps
SET status = 'queued', awaited = %(awaited)s, queued_at = clock_timestamp()
WHERE run_id = %(run_id)s AND name = %(step)s AND status = 'awaiting'
RETURNING attempt;

-- name: complete_awaited_step
-- An await after a step resolved: the step, which ran already, is completed.
UPDATE flowhost.steps
SET status = 'completed'
WHERE run_id = %(run_id)s AND name = %(step)s AND status = 'awaiting'
RETURNING attempt;

-- name: fail_awaiting_step
UPDATE flowhost.steps
SET status = 'failed', error = %(error)s, finished_at = clock_timestamp()
WHERE run_id = %(run_id)s AND name = %(step)s AND status = 'awaiting'
RETURNING attempt;

-- name: step_statuses
SELECT name, status FROM flowhost.steps WHERE run_id = %(run_id)s;

-- name: step_input
SELECT input FROM flowhost.steps WHERE run_id = %(run_id)s AND name = %(step)s;

-- name: refresh_await_status
-- A live run is `awaiting` while one of its awaits waits, `running` otherwise (the trigger on
-- runs moves the flow statistics).
WITH wanted AS (
    SELECT id,
           CASE WHEN EXISTS (SELECT 1 FROM flowhost.awaits AS a
                             WHERE a.run_id = runs.id AND a.status = 'waiting')
                THEN 'awaiting' ELSE 'running' END AS status
    FROM flowhost.runs
    WHERE id = ANY (%(run_ids)s::uuid[]) AND status IN ('running', 'awaiting')
)
UPDATE flowhost.runs AS r
SET status = w.status, version = r.version + 1
FROM wanted AS w
WHERE r.id = w.id AND r.status <> w.status;

-- name: lock_runs_with_due_awaits
-- The sweeper: runs with an await due, locked; runs another transaction holds are left for
-- later (SKIP LOCKED), so several hosts sweep side by side without waiting on each other.
WITH due AS (
    SELECT run_id, min(due_at) AS due_at
    FROM (SELECT run_id, due_at FROM flowhost.awaits
          WHERE status = 'waiting' AND due_at <= clock_timestamp()
          ORDER BY due_at
          LIMIT %(scan)s) AS d
    GROUP BY run_id
)
SELECT r.id, r.flow, r.status, r.emitted, r.priority, r.concurrency_key
FROM flowhost.runs AS r
JOIN due ON due.run_id = r.id
ORDER BY due.due_at
LIMIT %(limit)s
FOR UPDATE OF r SKIP LOCKED;

-- name: due_awaits_of_runs
SELECT id, run_id, step, position, type, status, registration, config, event_name, match,
       token, method, resolve_at, timeout_at, held, created_at,
       resolve_at IS NOT NULL AND resolve_at <= clock_timestamp()
           AND (timeout_at IS NULL OR resolve_at <= timeout_at) AS resolves
FROM flowhost.awaits
WHERE run_id = ANY (%(run_ids)s::uuid[]) AND status = 'waiting'
  AND due_at <= clock_timestamp()
ORDER BY id
FOR UPDATE;

-- name: next_await_due
-- Seconds until the next waiting await is due (negative: overdue; NULL: none waits).
SELECT extract(epoch FROM min(due_at) - clock_timestamp())::float8 AS seconds
FROM flowhost.awaits WHERE status = 'waiting';

-- name: awaits_of_run
SELECT id, step, position, type, status, registration, event_name, match, token, method,
       resolve_at, timeout_at, created_at, resolved_at, resolution
FROM flowhost.awaits WHERE run_id = %(run_id)s
ORDER BY id;

-- name: rearm_steps
-- Retry: steps %(names)s of run %(run_id)s wait on their await before they run again, which
-- ended without resolving (timed out, canceled): that await's row goes (its events stay), so
-- that it can be registered anew, and the steps wait instead of being queued.
WITH forgotten AS (
    DELETE FROM flowhost.awaits
    WHERE run_id = %(run_id)s AND step = ANY (%(names)s::text[]) AND position = 'before'
      AND status <> 'waiting'
)
UPDATE flowhost.steps SET status = 'awaiting'
WHERE run_id = %(run_id)s AND name = ANY (%(names)s::text[]) AND status = 'queued';

-- name: hold_entry_steps
-- Runs whose entry step waits on an await before it: the step waits instead of being queued.
UPDATE flowhost.steps SET status = 'awaiting'
WHERE run_id = ANY (%(run_ids)s::uuid[]) AND name = %(step)s AND status = 'queued';

-- name: wake_sweepers
-- Tells sleeping sweepers that an await is due at %(due_at)s (delivered at commit).
SELECT pg_notify('flowhost_awaits', %(due_at)s::text);
