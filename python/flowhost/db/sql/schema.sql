-- The canonical flowhost schema: what all migrations applied in order must produce.
-- tests/integration/test_migrations.py checks that they agree.

CREATE SCHEMA IF NOT EXISTS flowhost;

CREATE TABLE flowhost.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Flow definitions served by hosts (one row per flow name, the latest definition).
CREATE TABLE flowhost.flows (
    name text PRIMARY KEY,
    definition jsonb NOT NULL,
    definition_hash text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Flow statistics: a projection of flow.started / flow.completed / flow.failed events.
CREATE TABLE flowhost.flow_stats (
    flow text PRIMARY KEY,
    total bigint NOT NULL DEFAULT 0,
    running bigint NOT NULL DEFAULT 0,
    completed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    canceled bigint NOT NULL DEFAULT 0,
    total_duration_ms bigint NOT NULL DEFAULT 0,
    last_run_at timestamptz,
    last_completed_at timestamptz,
    queued bigint NOT NULL DEFAULT 0,
    awaiting bigint NOT NULL DEFAULT 0,
    stalled bigint NOT NULL DEFAULT 0
);

-- The run index: a projection of each run's event stream.
CREATE TABLE flowhost.runs (
    id uuid PRIMARY KEY,
    flow text NOT NULL,
    status text NOT NULL
        CONSTRAINT runs_status_check
        CHECK (status IN ('queued', 'running', 'awaiting', 'completed', 'failed', 'canceled',
                          'stalled')),
    input jsonb NOT NULL,
    result jsonb,
    error jsonb,
    definition_hash text NOT NULL,
    -- event name -> payload of the first emit of that name in the run
    emitted jsonb NOT NULL DEFAULT '{}'::jsonb,
    step_count integer NOT NULL DEFAULT 0,
    completed_steps integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    version integer NOT NULL DEFAULT 0,
    -- The run whose step started this one (ctx.flow.start), if any.
    parent_run_id uuid
);
CREATE INDEX runs_parent_idx ON flowhost.runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_created_idx ON flowhost.runs (created_at DESC, id);
CREATE INDEX runs_flow_created_idx ON flowhost.runs (flow, created_at DESC);
CREATE INDEX runs_status_created_idx ON flowhost.runs (status, created_at DESC);

-- One row per step of a run that was ever scheduled: its attempts, input, result or error.
CREATE TABLE flowhost.steps (
    run_id uuid NOT NULL REFERENCES flowhost.runs (id) ON DELETE CASCADE,
    name text NOT NULL,
    status text NOT NULL
        CONSTRAINT steps_status_check
        CHECK (status IN ('queued', 'running', 'awaiting', 'completed', 'failed', 'skipped',
                          'canceled')),
    attempt integer NOT NULL DEFAULT 1,
    max_attempts integer NOT NULL DEFAULT 1,
    input jsonb,
    result jsonb,
    error jsonb,
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at timestamptz,
    finished_at timestamptz,
    -- What an await before the step resolved with: the step gets it as ctx.awaited.
    awaited jsonb,
    PRIMARY KEY (run_id, name)
);

-- The event log: append-only, one stream per run, ordered by id.
CREATE TABLE flowhost.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL,
    type text NOT NULL,
    step text,
    attempt integer,
    ts timestamptz NOT NULL DEFAULT clock_timestamp(),
    data jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX events_run_idx ON flowhost.events (run_id, id);

CREATE FUNCTION flowhost.events_are_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'flowhost.events is append-only';
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE ON flowhost.events
    FOR EACH ROW EXECUTE FUNCTION flowhost.events_are_append_only();

-- Per-run key/value state: a write-through projection of state.set / state.delete events.
CREATE TABLE flowhost.state (
    run_id uuid NOT NULL REFERENCES flowhost.runs (id) ON DELETE CASCADE,
    key text NOT NULL,
    value jsonb NOT NULL,
    event_id bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, key)
);

-- Live hosts: each host refreshes its row; `flowhost run` looks here for a host serving a flow.
CREATE TABLE flowhost.hosts (
    id uuid PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    flows text[] NOT NULL DEFAULT '{}',
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now()
);

-- Start keys: `ctx.flow.start(..., idempotency_key=...)` starts at most one run per key.
CREATE TABLE flowhost.start_keys (
    flow text NOT NULL,
    key text NOT NULL,
    run_id uuid NOT NULL REFERENCES flowhost.runs (id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow, key)
);
CREATE INDEX start_keys_run_idx ON flowhost.start_keys (run_id);

-- Durable awaits: a step waits on a time, an event, a webhook call or a schedule, before it runs
-- (`before`) or before its emits count (`after`); any host resolves or times them out.
CREATE TABLE flowhost.awaits (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL REFERENCES flowhost.runs (id) ON DELETE CASCADE,
    step text NOT NULL,
    position text NOT NULL CONSTRAINT awaits_position_check CHECK (position IN ('before', 'after')),
    type text NOT NULL
        CONSTRAINT awaits_type_check CHECK (type IN ('time', 'event', 'webhook', 'schedule')),
    status text NOT NULL DEFAULT 'waiting'
        CONSTRAINT awaits_status_check
        CHECK (status IN ('waiting', 'resolved', 'timed_out', 'canceled')),
    -- 1 for the first registration; a timeout with timeoutAction "retry" registers again.
    registration integer NOT NULL DEFAULT 1,
    -- The await's declaration (AwaitDefinition.to_config()) as it was registered.
    config jsonb NOT NULL,
    -- event: the event name, and payload fields -> values resolved from the subject at
    -- registration ('{}': any payload of that name).
    event_name text,
    match jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- webhook: the secret part of the resolve URL (/hooks/await/{token}) and its method.
    token text CONSTRAINT awaits_token_key UNIQUE,
    method text,
    -- time and schedule: when it resolves; any type: when it times out (NULL: never).
    resolve_at timestamptz,
    timeout_at timestamptz,
    -- What the sweeper orders by: the first of the two.
    due_at timestamptz GENERATED ALWAYS AS (LEAST(resolve_at, timeout_at)) STORED,
    -- await_after: the step's result and emits, held until the await resolves.
    held jsonb,
    -- The data it resolved with (webhook body, event payload, fire time).
    resolution jsonb,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    resolved_at timestamptz,
    CONSTRAINT awaits_run_step_position_key UNIQUE (run_id, step, position)
);
-- The sweeper: waiting awaits by due time (also the minimum it sleeps until).
CREATE INDEX awaits_due_idx ON flowhost.awaits (due_at) WHERE status = 'waiting';
-- Events: awaits of an event name that accept any payload ...
CREATE INDEX awaits_event_any_idx ON flowhost.awaits (event_name)
    WHERE status = 'waiting' AND event_name IS NOT NULL AND match = '{}'::jsonb;
-- ... and awaits that match payload fields, found by each field of a published payload.
CREATE INDEX awaits_event_match_idx ON flowhost.awaits USING gin (match jsonb_path_ops)
    WHERE status = 'waiting' AND event_name IS NOT NULL AND match <> '{}'::jsonb;
