-- Per-run state: the state table, written beside its state.* events.

-- name: state_get
SELECT value FROM flowhost.state WHERE run_id = %(run_id)s AND key = %(key)s;

-- name: state_set
WITH event AS (
    INSERT INTO flowhost.events (run_id, type, step, attempt, data)
    VALUES (%(run_id)s, 'state.set', %(step)s, %(attempt)s,
            jsonb_build_object('key', %(key)s::text, 'value', %(value)s::jsonb))
    RETURNING id
)
INSERT INTO flowhost.state (run_id, key, value, event_id)
SELECT %(run_id)s, %(key)s, %(value)s, id FROM event
ON CONFLICT (run_id, key) DO UPDATE
    SET value = EXCLUDED.value, event_id = EXCLUDED.event_id, updated_at = clock_timestamp();

-- name: state_delete
WITH event AS (
    INSERT INTO flowhost.events (run_id, type, step, attempt, data)
    VALUES (%(run_id)s, 'state.delete', %(step)s, %(attempt)s,
            jsonb_build_object('key', %(key)s::text))
    RETURNING id
)
DELETE FROM flowhost.state WHERE run_id = %(run_id)s AND key = %(key)s
    AND EXISTS (SELECT 1 FROM event)
RETURNING key;

-- name: state_of_run
SELECT key, value FROM flowhost.state WHERE run_id = %(run_id)s ORDER BY key;

-- name: state_keys
SELECT key FROM flowhost.state WHERE run_id = %(run_id)s ORDER BY key;
