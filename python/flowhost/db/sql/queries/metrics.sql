-- The gauges of flowhost.metrics that need SQL, read when /metrics is scraped (at most every
-- few seconds), never on a hot path.

-- name: metrics_awaiting_runs
SELECT count(*) AS runs FROM flowhost.runs WHERE status = 'awaiting';

-- name: metrics_dead_tuples
SELECT relname AS table,
       n_dead_tup AS dead
FROM pg_stat_user_tables
WHERE (schemaname = 'flowhost' AND relname IN ('runs', 'steps', 'events', 'awaits'))
   OR relname = 'pgqueuer';
