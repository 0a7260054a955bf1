-- Flow definitions and their statistics.

-- name: upsert_flow
INSERT INTO flowhost.flows (name, definition, definition_hash)
VALUES (%(name)s, %(definition)s, %(definition_hash)s)
ON CONFLICT (name) DO UPDATE
    SET definition = EXCLUDED.definition,
        definition_hash = EXCLUDED.definition_hash,
        updated_at = now()
    WHERE flows.definition_hash <> EXCLUDED.definition_hash;

-- name: ensure_flow_stats
INSERT INTO flowhost.flow_stats (flow) VALUES (%(flow)s) ON CONFLICT (flow) DO NOTHING;

-- name: flow_stats
SELECT flow, total, running, completed, failed, canceled, total_duration_ms,
       last_run_at, last_completed_at
FROM flowhost.flow_stats ORDER BY flow;
