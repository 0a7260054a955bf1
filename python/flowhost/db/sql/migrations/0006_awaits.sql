-- 0005: durable awaits. A step waits on a time, an event, a webhook call or a schedule, before
-- it runs (`before`) or before its emits count (`after`). Each await is a row that any host can
-- resolve or time out, so nothing is lost when the host that registered it goes away.

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

-- What an await before the step resolved with: the step gets it as ctx.awaited.
ALTER TABLE flowhost.steps ADD COLUMN awaited jsonb;
