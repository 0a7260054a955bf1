-- Housekeeping (flowhost.engine.housekeeping): what only grows, pruned in bounded batches that
-- skip rows others hold; any number of hosts may prune at once.

-- name: prune_idle_key_slots
-- Slot counters of concurrency keys that hold nothing and were not served for %(idle_after)s
-- seconds: one per tenant ever seen, else. A key served again gets a new row; the round-robin
-- between keys then takes it as never served, which a key idle that long is, near enough.
-- A counter taken meanwhile is left (the condition is checked again on the locked row).
DELETE FROM flowhost.flow_slots
WHERE (flow, step, key) IN (
    SELECT flow, step, key FROM flowhost.flow_slots
    WHERE key <> '' AND held = 0
      AND (last_granted_at IS NULL
           OR last_granted_at < clock_timestamp() - make_interval(secs => %(idle_after)s))
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
AND held = 0;

-- name: prune_trigger_deliveries
-- Delivery keys older than %(retention)s seconds: a delivery repeated later starts runs again.
DELETE FROM flowhost.trigger_deliveries
WHERE (trigger, key) IN (
    SELECT trigger, key FROM flowhost.trigger_deliveries
    WHERE created_at < clock_timestamp() - make_interval(secs => %(retention)s)
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
);

-- name: prune_run_activity
-- Minutes of run activity older than %(retention)s seconds (nothing reads them any more).
DELETE FROM flowhost.run_activity
WHERE (minute, flow) IN (
    SELECT minute, flow FROM flowhost.run_activity
    WHERE minute < clock_timestamp() - make_interval(secs => %(retention)s)
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
);
