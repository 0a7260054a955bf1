-- What the dashboard's pages read beside the queries the API shares with them: each answers
-- from an index or a small table, whatever the number of runs.

-- name: run_activity
-- Runs started and ended per bucket of %(bucket)s from %(since)s (buckets aligned as
-- flowhost.activity_minute aligns minutes), of one flow or all; buckets without runs are absent.
SELECT date_bin(%(bucket)s::interval, minute, timestamptz '2000-01-01 00:00:00+00') AS at,
       sum(started) AS started, sum(completed) AS completed, sum(failed) AS failed,
       sum(canceled) AS canceled, sum(stalled) AS stalled
FROM flowhost.run_activity
WHERE minute >= %(since)s AND (%(flow)s::text IS NULL OR flow = %(flow)s)
GROUP BY 1
ORDER BY 1;

-- name: recent_failures
-- The latest failed runs with their error (runs_status_created_idx).
SELECT id, flow, created_at, finished_at, error
FROM flowhost.runs
WHERE status = 'failed'
ORDER BY created_at DESC
LIMIT %(limit)s;

-- name: queue_depth
-- Jobs in the queue per entrypoint (a flow's steps, awaits, hooks) and status (queued, picked):
-- PgQueuer keeps only live jobs there. Also what /metrics reports.
SELECT entrypoint, status::text AS status, count(*) AS jobs,
       min(created) AS oldest, min(execute_after) AS first_due,
       count(*) FILTER (WHERE execute_after > now()) AS delayed
FROM pgqueuer
GROUP BY entrypoint, status
ORDER BY entrypoint, status;

-- name: waiting_lists
-- Flow control's waiting lists: runs (step '') and steps waiting for a slot, per flow.
SELECT flow, step, reason, count(*) AS waiting, min(waiting_since) AS since
FROM flowhost.flow_waiters
GROUP BY flow, step, reason
ORDER BY flow, step, reason;

-- name: list_hosts
-- Hosts that registered, live or not: live ones were seen within %(stale_after)s seconds.
SELECT id, hostname, pid, flows, definitions, started_at, last_seen,
       last_seen > now() - make_interval(secs => %(stale_after)s) AS live
FROM flowhost.hosts
ORDER BY live DESC, started_at;
