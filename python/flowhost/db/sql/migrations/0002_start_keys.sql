-- 0002: start keys, so that a step retried after starting a flow gets the run it started.

CREATE TABLE flowhost.start_keys (
    flow text NOT NULL,
    key text NOT NULL,
    run_id uuid NOT NULL REFERENCES flowhost.runs (id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow, key)
);
CREATE INDEX start_keys_run_idx ON flowhost.start_keys (run_id);
