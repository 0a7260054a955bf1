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

-- Flow statistics: runs per flow by status (kept by the runs_count_* triggers below), and the
-- durations of completed runs. A projection of the runs' events (`flowhost stats rebuild`).
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
    stalled bigint NOT NULL DEFAULT 0,
    -- The longest completed run.
    max_duration_ms bigint NOT NULL DEFAULT 0
);

-- Every definition of a flow that a host ever served, by hash: what a run's definition_hash
-- names, with the stall timeout computed from it. `last_served_at` is refreshed by the hosts
-- serving it (at most every few seconds).
CREATE TABLE flowhost.flow_versions (
    flow text NOT NULL,
    definition_hash text NOT NULL,
    definition jsonb NOT NULL,
    stall_timeout_ms bigint NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_served_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (flow, definition_hash)
);

-- Per-step figures: a projection of step.completed / step.failed / step.retry / step.skipped
-- events, written by the statements that end attempts. Durations are of completed attempts,
-- in milliseconds with microseconds.
CREATE TABLE flowhost.step_stats (
    flow text NOT NULL,
    step text NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    retried bigint NOT NULL DEFAULT 0,
    skipped bigint NOT NULL DEFAULT 0,
    total_duration_ms numeric NOT NULL DEFAULT 0,
    max_duration_ms numeric NOT NULL DEFAULT 0,
    last_finished_at timestamptz,
    PRIMARY KEY (flow, step)
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
    parent_run_id uuid,
    priority integer NOT NULL DEFAULT 0,
    -- The JSON text of the input's value at the flow's concurrency_key pointer.
    concurrency_key text,
    -- A delayed start that has not happened yet (the run is queued until then).
    start_at timestamptz,
    -- The run's flow had limits or a debounce key when it started: its end releases slots.
    flow_control boolean NOT NULL DEFAULT false,
    -- When something last happened in the run: a step ended, its status changed. Runs that stay
    -- live without activity for longer than their flow's stall timeout are marked `stalled`.
    last_activity_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX runs_parent_idx ON flowhost.runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
CREATE INDEX runs_created_idx ON flowhost.runs (created_at DESC, id);
CREATE INDEX runs_flow_created_idx ON flowhost.runs (flow, created_at DESC);
CREATE INDEX runs_status_created_idx ON flowhost.runs (status, created_at DESC);
-- The run list by flow and status at once (a rare status of a common flow).
CREATE INDEX runs_flow_status_created_idx ON flowhost.runs (flow, status, created_at DESC);

-- A change of status is activity, whoever makes it.
CREATE FUNCTION flowhost.touch_run() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_activity_at := clock_timestamp();
    RETURN NEW;
END
$$;
CREATE TRIGGER runs_touch BEFORE UPDATE OF status ON flowhost.runs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION flowhost.touch_run();

-- Durations in whole milliseconds, floored: the statistics, their rebuild from events and the
-- percentiles all count a duration the same way.
CREATE FUNCTION flowhost.duration_ms(started timestamptz, finished timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN floor(extract(epoch FROM finished - started) * 1000)::bigint;

-- Runs started and ended per minute and flow (the dashboard's runs over time), kept by
-- count_runs with flow_stats. Hosts prune old minutes (flowhost.engine.housekeeping).
CREATE TABLE flowhost.run_activity (
    minute timestamptz NOT NULL,
    flow text NOT NULL,
    started bigint NOT NULL DEFAULT 0,
    completed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    canceled bigint NOT NULL DEFAULT 0,
    stalled bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, flow)
);

-- The minute a time falls in, whatever the session's time zone.
CREATE FUNCTION flowhost.activity_minute(at timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_bin('1 minute', at, timestamptz '2000-01-01 00:00:00+00');

-- Counts by status, kept by the database itself: every statement that inserts, deletes or
-- changes the status of runs adds its deltas per flow in one upsert, whatever its author
-- remembered. Flows are upserted in name order, so that two statements cannot deadlock.
CREATE FUNCTION flowhost.count_runs() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO flowhost.flow_stats AS f
            (flow, total, queued, running, awaiting, completed, failed, canceled, stalled,
             total_duration_ms, max_duration_ms, last_run_at, last_completed_at)
        SELECT flow, count(*),
               count(*) FILTER (WHERE status = 'queued'),
               count(*) FILTER (WHERE status = 'running'),
               count(*) FILTER (WHERE status = 'awaiting'),
               count(*) FILTER (WHERE status = 'completed'),
               count(*) FILTER (WHERE status = 'failed'),
               count(*) FILTER (WHERE status = 'canceled'),
               count(*) FILTER (WHERE status = 'stalled'),
               COALESCE(sum(flowhost.duration_ms(created_at, finished_at))
                        FILTER (WHERE status = 'completed'), 0),
               COALESCE(max(flowhost.duration_ms(created_at, finished_at))
                        FILTER (WHERE status = 'completed'), 0),
               max(created_at),
               max(finished_at) FILTER (WHERE status = 'completed')
        FROM new_runs GROUP BY flow ORDER BY flow
        ON CONFLICT (flow) DO UPDATE
            SET total = f.total + EXCLUDED.total,
                queued = f.queued + EXCLUDED.queued,
                running = f.running + EXCLUDED.running,
                awaiting = f.awaiting + EXCLUDED.awaiting,
                completed = f.completed + EXCLUDED.completed,
                failed = f.failed + EXCLUDED.failed,
                canceled = f.canceled + EXCLUDED.canceled,
                stalled = f.stalled + EXCLUDED.stalled,
                total_duration_ms = f.total_duration_ms + EXCLUDED.total_duration_ms,
                max_duration_ms = GREATEST(f.max_duration_ms, EXCLUDED.max_duration_ms),
                last_run_at = GREATEST(f.last_run_at, EXCLUDED.last_run_at),
                last_completed_at = GREATEST(f.last_completed_at, EXCLUDED.last_completed_at);
        -- Runs over time (the dashboard's chart): each run starts in the minute it was
        -- created; one inserted already over (an import) also ends in the minute it finished.
        -- After flow_stats: a statement holds a flow's row there before its activity rows.
        INSERT INTO flowhost.run_activity AS a
            (minute, flow, started, completed, failed, canceled, stalled)
        SELECT m.minute, m.flow,
               count(*) FILTER (WHERE m.status IS NULL),
               count(*) FILTER (WHERE m.status = 'completed'),
               count(*) FILTER (WHERE m.status = 'failed'),
               count(*) FILTER (WHERE m.status = 'canceled'),
               count(*) FILTER (WHERE m.status = 'stalled')
        FROM new_runs AS n
        CROSS JOIN LATERAL (
            VALUES (flowhost.activity_minute(n.created_at), n.flow, NULL::text),
                   (flowhost.activity_minute(COALESCE(n.finished_at, n.created_at)), n.flow,
                    n.status)
        ) AS m (minute, flow, status)
        WHERE m.status IS NULL OR m.status IN ('completed', 'failed', 'canceled', 'stalled')
        GROUP BY m.flow, m.minute ORDER BY m.flow, m.minute
        ON CONFLICT (minute, flow) DO UPDATE
            SET started = a.started + EXCLUDED.started,
                completed = a.completed + EXCLUDED.completed,
                failed = a.failed + EXCLUDED.failed,
                canceled = a.canceled + EXCLUDED.canceled,
                stalled = a.stalled + EXCLUDED.stalled;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Each run that changed status leaves its old count (-1) and joins its new one (+1);
        -- one that completes adds its duration.
        INSERT INTO flowhost.flow_stats AS f
            (flow, total, queued, running, awaiting, completed, failed, canceled, stalled,
             total_duration_ms, max_duration_ms, last_run_at, last_completed_at)
        SELECT m.flow, 0,
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'queued'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'running'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'awaiting'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'completed'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'failed'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'canceled'), 0),
               COALESCE(sum(m.n) FILTER (WHERE m.status = 'stalled'), 0),
               COALESCE(sum(flowhost.duration_ms(m.created_at, m.finished_at))
                        FILTER (WHERE m.n = 1 AND m.status = 'completed'), 0),
               COALESCE(max(flowhost.duration_ms(m.created_at, m.finished_at))
                        FILTER (WHERE m.n = 1 AND m.status = 'completed'), 0),
               NULL::timestamptz,
               max(m.finished_at) FILTER (WHERE m.n = 1 AND m.status = 'completed')
        FROM new_runs AS n
        JOIN old_runs AS o ON o.id = n.id
        CROSS JOIN LATERAL (
            VALUES (n.flow, n.status, 1, n.created_at, n.finished_at),
                   (o.flow, o.status, -1, o.created_at, o.finished_at)
        ) AS m (flow, status, n, created_at, finished_at)
        WHERE n.status <> o.status OR n.flow <> o.flow
        GROUP BY m.flow ORDER BY m.flow
        ON CONFLICT (flow) DO UPDATE
            SET queued = f.queued + EXCLUDED.queued,
                running = f.running + EXCLUDED.running,
                awaiting = f.awaiting + EXCLUDED.awaiting,
                completed = f.completed + EXCLUDED.completed,
                failed = f.failed + EXCLUDED.failed,
                canceled = f.canceled + EXCLUDED.canceled,
                stalled = f.stalled + EXCLUDED.stalled,
                total_duration_ms = f.total_duration_ms + EXCLUDED.total_duration_ms,
                max_duration_ms = GREATEST(f.max_duration_ms, EXCLUDED.max_duration_ms),
                last_completed_at = GREATEST(f.last_completed_at, EXCLUDED.last_completed_at);
        -- Runs that ended (again, for a retried run that ends again), in the minute they did.
        INSERT INTO flowhost.run_activity AS a
            (minute, flow, started, completed, failed, canceled, stalled)
        SELECT flowhost.activity_minute(COALESCE(n.finished_at, clock_timestamp())), n.flow, 0,
               count(*) FILTER (WHERE n.status = 'completed'),
               count(*) FILTER (WHERE n.status = 'failed'),
               count(*) FILTER (WHERE n.status = 'canceled'),
               count(*) FILTER (WHERE n.status = 'stalled')
        FROM new_runs AS n
        JOIN old_runs AS o ON o.id = n.id
        WHERE n.status <> o.status AND n.status IN ('completed', 'failed', 'canceled', 'stalled')
        GROUP BY 2, 1 ORDER BY 2, 1
        ON CONFLICT (minute, flow) DO UPDATE
            SET completed = a.completed + EXCLUDED.completed,
                failed = a.failed + EXCLUDED.failed,
                canceled = a.canceled + EXCLUDED.canceled,
                stalled = a.stalled + EXCLUDED.stalled;
    ELSE
        -- Deleted runs leave their counts; the longest duration and the times stay.
        UPDATE flowhost.flow_stats AS f
        SET total = f.total - d.total,
            queued = f.queued - d.queued,
            running = f.running - d.running,
            awaiting = f.awaiting - d.awaiting,
            completed = f.completed - d.completed,
            failed = f.failed - d.failed,
            canceled = f.canceled - d.canceled,
            stalled = f.stalled - d.stalled,
            total_duration_ms = f.total_duration_ms - d.total_duration_ms
        FROM (
            SELECT flow, count(*) AS total,
                   count(*) FILTER (WHERE status = 'queued') AS queued,
                   count(*) FILTER (WHERE status = 'running') AS running,
                   count(*) FILTER (WHERE status = 'awaiting') AS awaiting,
                   count(*) FILTER (WHERE status = 'completed') AS completed,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status = 'canceled') AS canceled,
                   count(*) FILTER (WHERE status = 'stalled') AS stalled,
                   COALESCE(sum(flowhost.duration_ms(created_at, finished_at))
                            FILTER (WHERE status = 'completed'), 0) AS total_duration_ms
            FROM old_runs GROUP BY flow ORDER BY flow
        ) AS d
        WHERE f.flow = d.flow;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_count_inserted AFTER INSERT ON flowhost.runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION flowhost.count_runs();
CREATE TRIGGER runs_count_updated AFTER UPDATE ON flowhost.runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION flowhost.count_runs();
CREATE TRIGGER runs_count_deleted AFTER DELETE ON flowhost.runs
    REFERENCING OLD TABLE AS old_runs
    FOR EACH STATEMENT EXECUTE FUNCTION flowhost.count_runs();

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
    -- The step has a concurrency limit: its end releases its slot.
    flow_control boolean NOT NULL DEFAULT false,
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

-- Realtime streams (docs/realtime.md): each statement that appends events announces the range
-- of ids it appended, at its commit (one notification per statement, however many events).
-- Processes with realtime streams open register here (flowhost.realtime) and refresh their row
-- every few seconds: events are announced only while one is registered, so that the engine's
-- statements pay no NOTIFY (which wakes every listening backend) when nobody streams.
CREATE TABLE flowhost.stream_listeners (
    id uuid PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION flowhost.announce_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    -- A registration older than this belongs to a process that is gone (they refresh every 5 s).
    IF EXISTS (SELECT 1 FROM flowhost.stream_listeners
               WHERE seen_at > clock_timestamp() - interval '60 seconds') THEN
        PERFORM pg_notify('flowhost_events', min(id)::text || ':' || max(id)::text)
        FROM appended
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_announce AFTER INSERT ON flowhost.events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION flowhost.announce_events();

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
    last_seen timestamptz NOT NULL DEFAULT now(),
    -- Which definition (hash) of each flow the host serves: flow name -> definition hash.
    definitions jsonb NOT NULL DEFAULT '{}'::jsonb
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

-- Flow control (docs/flow-control.md): limits across hosts, waiting lists, start keys.
-- One row per flow with limits: the limits (written when a host registers the flow) and the
-- row every flow-control decision of the flow locks.
CREATE TABLE flowhost.flow_controls (
    flow text PRIMARY KEY,
    max_runs integer,
    key_concurrency integer,
    -- step name -> how many of its attempts may be queued or running at once, on all hosts
    step_limits jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Slot counters: step '' is the flow's runs, key '' a whole scope, any other key one
-- concurrency key within it (its counter, and when it was last served, for round-robin).
CREATE TABLE flowhost.flow_slots (
    flow text NOT NULL,
    step text NOT NULL,
    key text NOT NULL,
    held integer NOT NULL DEFAULT 0 CONSTRAINT flow_slots_held_check CHECK (held >= 0),
    last_granted_at timestamptz,
    PRIMARY KEY (flow, step, key)
);

-- Who holds which slot: releasing deletes these rows, so a release happens once however many
-- paths try it.
CREATE TABLE flowhost.flow_holds (
    run_id uuid NOT NULL,
    step text NOT NULL,
    key text NOT NULL,
    flow text NOT NULL,
    held_since timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, step, key)
);

-- The waiting list: a run waiting to start (step '') or a step waiting for its slot.
CREATE TABLE flowhost.flow_waiters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flow text NOT NULL,
    step text NOT NULL,
    run_id uuid NOT NULL,
    -- The step whose job is enqueued once a slot is granted (for a run, its entry step).
    job_step text NOT NULL,
    attempt integer NOT NULL DEFAULT 1,
    key text,
    priority integer NOT NULL DEFAULT 0,
    reason text NOT NULL,
    waiting_since timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX flow_waiters_run_idx ON flowhost.flow_waiters (run_id, step);
CREATE INDEX flow_waiters_scope_idx ON flowhost.flow_waiters (flow, step, priority DESC, id);

-- A start with a dedupe key returns the key's run until the key expires.
CREATE TABLE flowhost.dedupe_keys (
    flow text NOT NULL,
    key text NOT NULL,
    run_id uuid NOT NULL REFERENCES flowhost.runs (id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (flow, key)
);
CREATE INDEX dedupe_keys_expiry_idx ON flowhost.dedupe_keys (expires_at);
CREATE INDEX dedupe_keys_run_idx ON flowhost.dedupe_keys (run_id);

-- A debounce key names its pending run until that run starts; `start_at` (pushed back by each
-- start with the key) is when it may.
CREATE TABLE flowhost.debounce_keys (
    flow text NOT NULL,
    key text NOT NULL,
    run_id uuid NOT NULL REFERENCES flowhost.runs (id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED,
    start_at timestamptz NOT NULL,
    PRIMARY KEY (flow, key)
);
CREATE UNIQUE INDEX debounce_keys_run_idx ON flowhost.debounce_keys (run_id);

-- Enqueue a step job as flowhost.queue.pgqueuer_queue.enqueue_steps does (same entrypoint,
-- payload, dedupe key; PgQueuer's own table and log): the one place flowhost's SQL writes
-- PgQueuer's tables, for jobs granted inside a trigger, where Python cannot be called.
CREATE FUNCTION flowhost.fc_enqueue(
    p_run uuid, p_flow text, p_step text, p_attempt integer, p_priority integer
) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    WITH job AS (
        INSERT INTO pgqueuer (priority, entrypoint, payload, execute_after, dedupe_key, status)
        VALUES (p_priority, 'flow:' || p_flow,
                convert_to(json_build_object('run', p_run, 'flow', p_flow, 'step', p_step,
                                             'attempt', p_attempt)::text, 'UTF8'),
                now(), p_run::text || ':' || p_step || ':' || p_attempt, 'queued')
        ON CONFLICT (dedupe_key) WHERE status IN ('queued', 'picked') AND dedupe_key IS NOT NULL
        DO NOTHING
        RETURNING id, entrypoint, priority
    )
    INSERT INTO pgqueuer_log (job_id, status, entrypoint, priority)
    SELECT id, 'queued', entrypoint, priority FROM job;
END
$$;

-- The flow's control row, locked until the transaction ends (created from `p_limits`, the
-- caller's definition, if no host registered the flow yet).
CREATE FUNCTION flowhost.fc_lock(p_flow text, p_limits jsonb) RETURNS flowhost.flow_controls
    LANGUAGE plpgsql AS $$
DECLARE
    control flowhost.flow_controls;
BEGIN
    SELECT * INTO control FROM flowhost.flow_controls WHERE flow = p_flow FOR UPDATE;
    IF FOUND THEN
        RETURN control;
    END IF;
    INSERT INTO flowhost.flow_controls (flow, max_runs, key_concurrency, step_limits)
    VALUES (p_flow, (p_limits ->> 'max_runs')::integer,
            (p_limits ->> 'key_concurrency')::integer,
            COALESCE(p_limits -> 'step_limits', '{}'::jsonb))
    ON CONFLICT (flow) DO NOTHING;
    SELECT * INTO control FROM flowhost.flow_controls WHERE flow = p_flow FOR UPDATE;
    RETURN control;
END
$$;

-- Locks the control rows of several flows in name order (a batch touching several limited
-- flows takes them before anything else, so two batches never wait on each other in a cycle).
CREATE FUNCTION flowhost.fc_lock_flows(p_flows jsonb) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    item record;
    locked integer := 0;
BEGIN
    FOR item IN
        SELECT f.flow, f.limits
        FROM jsonb_to_recordset(p_flows) AS f(flow text, limits jsonb)
        ORDER BY f.flow
    LOOP
        PERFORM flowhost.fc_lock(item.flow, item.limits);
        locked := locked + 1;
    END LOOP;
    RETURN locked;
END
$$;

-- Slots held in scope (p_flow, p_step): the whole scope (p_key NULL) or one key of it.
CREATE FUNCTION flowhost.fc_held(p_flow text, p_step text, p_key text) RETURNS integer
    LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT held FROM flowhost.flow_slots
                     WHERE flow = p_flow AND step = p_step AND key = COALESCE(p_key, '')), 0)
$$;

-- Whether a run (p_step '') or a step may take a slot now. Caller holds the flow's lock.
CREATE FUNCTION flowhost.fc_has_room(
    control flowhost.flow_controls, p_step text, p_key text
) RETURNS boolean
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    capacity integer;
BEGIN
    IF p_step = '' THEN
        IF control.max_runs IS NOT NULL
           AND flowhost.fc_held(control.flow, '', NULL) >= control.max_runs THEN
            RETURN false;
        END IF;
        RETURN control.key_concurrency IS NULL OR p_key IS NULL
            OR flowhost.fc_held(control.flow, '', p_key) < control.key_concurrency;
    END IF;
    capacity := (control.step_limits ->> p_step)::integer;
    RETURN capacity IS NULL OR flowhost.fc_held(control.flow, p_step, NULL) < capacity;
END
$$;

-- Take a slot of scope (p_flow, p_step) for p_run (and of its key, when it has one): count
-- it, note who holds it and when the key was served. Caller holds the lock and checked room.
CREATE FUNCTION flowhost.fc_take(p_flow text, p_step text, p_key text, p_run uuid) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO flowhost.flow_slots AS s (flow, step, key, held, last_granted_at)
    SELECT p_flow, p_step, k.key, 1, clock_timestamp()
    FROM (VALUES (''), (p_key)) AS k(key) WHERE k.key IS NOT NULL
    ON CONFLICT (flow, step, key) DO UPDATE
        SET held = s.held + 1, last_granted_at = EXCLUDED.last_granted_at;
    INSERT INTO flowhost.flow_holds (run_id, step, key, flow)
    SELECT p_run, p_step, k.key, p_flow
    FROM (VALUES (''), (p_key)) AS k(key) WHERE k.key IS NOT NULL
    ON CONFLICT DO NOTHING;
    -- The end of the holder must release it, whatever its definition said when it was written.
    IF p_step = '' THEN
        UPDATE flowhost.runs SET flow_control = true WHERE id = p_run AND NOT flow_control;
    ELSE
        UPDATE flowhost.steps SET flow_control = true
        WHERE run_id = p_run AND name = p_step AND NOT flow_control;
    END IF;
END
$$;

-- A step that became ready: take its slot and enqueue its job, or leave it waiting (queued,
-- without a job). Steps without a limit are enqueued. Caller holds the flow's lock.
CREATE FUNCTION flowhost.fc_gate_step(
    control flowhost.flow_controls, p_run uuid, p_step text, p_attempt integer, p_key text,
    p_priority integer
) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    IF NOT control.step_limits ? p_step THEN
        PERFORM flowhost.fc_enqueue(p_run, control.flow, p_step, p_attempt, p_priority);
        RETURN true;
    END IF;
    IF flowhost.fc_has_room(control, p_step, p_key) THEN
        PERFORM flowhost.fc_take(control.flow, p_step, p_key, p_run);
        PERFORM flowhost.fc_enqueue(p_run, control.flow, p_step, p_attempt, p_priority);
        RETURN true;
    END IF;
    INSERT INTO flowhost.flow_waiters
        (flow, step, run_id, job_step, attempt, key, priority, reason)
    VALUES (control.flow, p_step, p_run, p_step, p_attempt, p_key, p_priority, 'concurrency')
    ON CONFLICT (run_id, step) DO NOTHING;
    IF FOUND THEN
        INSERT INTO flowhost.events (run_id, type, step, attempt, data)
        VALUES (p_run, 'step.waiting', p_step, p_attempt,
                jsonb_build_object('reason', 'concurrency',
                                   'limit', (control.step_limits ->> p_step)::integer));
    END IF;
    RETURN false;
END
$$;

-- A run that may start now: it runs, its entry step goes through the step gate.
CREATE FUNCTION flowhost.fc_start_run(
    control flowhost.flow_controls, p_run uuid, p_entry text, p_key text, p_priority integer,
    p_announce boolean
) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE flowhost.runs SET status = 'running', start_at = NULL, version = version + 1
    WHERE id = p_run AND status = 'queued';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_announce THEN
        INSERT INTO flowhost.events (run_id, type, data)
        VALUES (p_run, 'flow.admitted', '{}'::jsonb);
    END IF;
    PERFORM flowhost.fc_gate_step(control, p_run, p_entry, 1, p_key, p_priority);
END
$$;

-- Grant freed slots of every scope of the flow to its waiters: highest priority first, then
-- the key served longest ago (round-robin between keys), then first come. Caller holds the
-- flow's lock. Waiters whose rows another transaction holds (it is removing them) are skipped.
CREATE FUNCTION flowhost.fc_grant(p_flow text) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    control flowhost.flow_controls;
    waiter flowhost.flow_waiters;
    scope text;
    capacity integer;
    skipped bigint[] := '{}';
    granted integer := 0;
BEGIN
    SELECT * INTO control FROM flowhost.flow_controls WHERE flow = p_flow;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    -- Runs waiting to start.
    LOOP
        EXIT WHEN control.max_runs IS NOT NULL
              AND flowhost.fc_held(p_flow, '', NULL) >= control.max_runs;
        SELECT w.* INTO waiter
        FROM flowhost.flow_waiters AS w
        LEFT JOIN flowhost.flow_slots AS k
            ON k.flow = w.flow AND k.step = '' AND k.key = w.key
        WHERE w.flow = p_flow AND w.step = '' AND w.id <> ALL (skipped)
          AND (control.key_concurrency IS NULL OR w.key IS NULL
               OR COALESCE(k.held, 0) < control.key_concurrency)
        ORDER BY w.priority DESC, k.last_granted_at ASC NULLS FIRST, w.id
        LIMIT 1
        FOR UPDATE OF w SKIP LOCKED;
        EXIT WHEN NOT FOUND;
        PERFORM 1 FROM flowhost.runs
        WHERE id = waiter.run_id AND status = 'queued'
        FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            skipped := skipped || waiter.id;
            CONTINUE;
        END IF;
        DELETE FROM flowhost.flow_waiters WHERE id = waiter.id;
        PERFORM flowhost.fc_take(p_flow, '', waiter.key, waiter.run_id);
        PERFORM flowhost.fc_start_run(control, waiter.run_id, waiter.job_step, waiter.key,
                                      waiter.priority, true);
        granted := granted + 1;
    END LOOP;
    -- Steps waiting for their slot, scope by scope.
    FOR scope IN
        SELECT DISTINCT step FROM flowhost.flow_waiters
        WHERE flow = p_flow AND step <> '' ORDER BY step
    LOOP
        capacity := (control.step_limits ->> scope)::integer;
        LOOP
            EXIT WHEN capacity IS NOT NULL
                  AND flowhost.fc_held(p_flow, scope, NULL) >= capacity;
            SELECT w.* INTO waiter
            FROM flowhost.flow_waiters AS w
            LEFT JOIN flowhost.flow_slots AS k
                ON k.flow = w.flow AND k.step = w.step AND k.key = w.key
            WHERE w.flow = p_flow AND w.step = scope AND w.id <> ALL (skipped)
            ORDER BY w.priority DESC, k.last_granted_at ASC NULLS FIRST, w.id
            LIMIT 1
            FOR UPDATE OF w SKIP LOCKED;
            EXIT WHEN NOT FOUND;
            DELETE FROM flowhost.flow_waiters WHERE id = waiter.id;
            IF capacity IS NOT NULL THEN
                PERFORM flowhost.fc_take(p_flow, scope, waiter.key, waiter.run_id);
            END IF;
            PERFORM flowhost.fc_enqueue(waiter.run_id, p_flow, waiter.job_step, waiter.attempt,
                                        waiter.priority);
            INSERT INTO flowhost.events (run_id, type, step, attempt, data)
            VALUES (waiter.run_id, 'step.admitted', waiter.job_step, waiter.attempt, '{}'::jsonb);
            granted := granted + 1;
        END LOOP;
    END LOOP;
    RETURN granted;
END
$$;

-- Release what p_run holds (p_step NULL: everything, at the run's end; else that step's slot)
-- and grant the freed slots.
CREATE FUNCTION flowhost.fc_release(p_flow text, p_run uuid, p_step text) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM flowhost.fc_lock(p_flow, '{}'::jsonb);
    WITH released AS (
        DELETE FROM flowhost.flow_holds
        WHERE run_id = p_run AND (p_step IS NULL OR step = p_step)
        RETURNING flow, step, key
    ), counted AS (
        SELECT flow, step, key, count(*)::integer AS n FROM released GROUP BY flow, step, key
    )
    UPDATE flowhost.flow_slots AS s SET held = s.held - c.n
    FROM counted AS c
    WHERE s.flow = c.flow AND s.step = c.step AND s.key = c.key;
    PERFORM flowhost.fc_grant(p_flow);
END
$$;

-- Before a run of a flow under flow control ends: its flow's lock comes before the flow_stats
-- row the ending statement updates (the order every transaction follows).
CREATE FUNCTION flowhost.fc_run_ending() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM flowhost.flow_controls WHERE flow = OLD.flow FOR UPDATE;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

-- A run under flow control ended (in any way, by any code): it stops waiting, its debounce key
-- is free, and its slots (its own and its steps') go to the next waiters.
CREATE FUNCTION flowhost.fc_run_ended() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM flowhost.flow_waiters WHERE run_id = OLD.id;
    DELETE FROM flowhost.debounce_keys WHERE run_id = OLD.id;
    -- Holds granted by a transaction that held the flow's lock are visible here: the BEFORE
    -- trigger waited for that lock.
    IF EXISTS (SELECT 1 FROM flowhost.flow_holds WHERE run_id = OLD.id) THEN
        PERFORM flowhost.fc_release(OLD.flow, OLD.id, NULL);
    END IF;
    RETURN NULL;
END
$$;

-- A step with a limit finished running (completed, failed for good, skipped, canceled, or
-- awaiting after it ran): its slot goes to the next waiter. Retries keep the slot.
CREATE FUNCTION flowhost.fc_step_ended() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    held_flow text;
BEGIN
    DELETE FROM flowhost.flow_waiters WHERE run_id = NEW.run_id AND step = NEW.name;
    SELECT flow INTO held_flow FROM flowhost.flow_holds
    WHERE run_id = NEW.run_id AND step = NEW.name LIMIT 1;
    IF FOUND THEN
        PERFORM flowhost.fc_release(held_flow, NEW.run_id, NEW.name);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_flow_control_ending
    BEFORE UPDATE OF status ON flowhost.runs
    FOR EACH ROW
    WHEN (NEW.flow_control AND OLD.status IN ('queued', 'running', 'awaiting')
          AND NEW.status NOT IN ('queued', 'running', 'awaiting'))
    EXECUTE FUNCTION flowhost.fc_run_ending();
CREATE TRIGGER runs_flow_control_ended
    AFTER UPDATE OF status ON flowhost.runs
    FOR EACH ROW
    WHEN (NEW.flow_control AND OLD.status IN ('queued', 'running', 'awaiting')
          AND NEW.status NOT IN ('queued', 'running', 'awaiting'))
    EXECUTE FUNCTION flowhost.fc_run_ended();
CREATE TRIGGER runs_flow_control_deleting
    BEFORE DELETE ON flowhost.runs
    FOR EACH ROW
    WHEN (OLD.flow_control AND OLD.status IN ('queued', 'running', 'awaiting'))
    EXECUTE FUNCTION flowhost.fc_run_ending();
CREATE TRIGGER runs_flow_control_deleted
    AFTER DELETE ON flowhost.runs
    FOR EACH ROW
    WHEN (OLD.flow_control AND OLD.status IN ('queued', 'running', 'awaiting'))
    EXECUTE FUNCTION flowhost.fc_run_ended();
CREATE TRIGGER steps_flow_control_ended
    AFTER UPDATE OF status ON flowhost.steps
    FOR EACH ROW
    WHEN (NEW.flow_control AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('awaiting', 'completed', 'failed', 'skipped', 'canceled'))
    EXECUTE FUNCTION flowhost.fc_step_ended();

-- New runs of a flow: each starts now (its slots taken, its entry step through the step gate)
-- or waits (queued, in flow_waiters). The runs exist, queued, in flowhost.runs and
-- flow_stats.queued. %(runs)s items: {run_id, key, priority, announce}.
CREATE FUNCTION flowhost.fc_admit_runs(
    p_flow text, p_entry text, p_limits jsonb, p_runs jsonb
) RETURNS TABLE (admitted_run uuid, admitted boolean)
    LANGUAGE plpgsql AS $$
DECLARE
    control flowhost.flow_controls;
    controlled boolean := (p_limits ->> 'max_runs') IS NOT NULL
        OR (p_limits ->> 'key_concurrency') IS NOT NULL
        OR COALESCE(p_limits -> 'step_limits', '{}'::jsonb) ? p_entry;
    item record;
    aggregate_full boolean;
BEGIN
    IF controlled THEN
        control := flowhost.fc_lock(p_flow, p_limits);
        -- Waiters first: a run admitted while one of them could start would jump the line.
        PERFORM flowhost.fc_grant(p_flow);
    ELSE
        -- Nothing limits this start (a delayed run of a flow without run or entry limits): no
        -- lock, no control row.
        control := ROW(p_flow, NULL, NULL, COALESCE(p_limits -> 'step_limits', '{}'::jsonb),
                       now())::flowhost.flow_controls;
    END IF;
    FOR item IN
        SELECT r.run_id AS id, r.key, COALESCE(r.priority, 0) AS priority,
               COALESCE(r.announce, false) AS announce
        FROM jsonb_to_recordset(p_runs)
            AS r(run_id uuid, key text, priority integer, announce boolean)
    LOOP
        admitted_run := item.id;
        IF flowhost.fc_has_room(control, '', item.key) THEN
            IF controlled THEN
                PERFORM flowhost.fc_take(p_flow, '', item.key, item.id);
            END IF;
            PERFORM flowhost.fc_start_run(control, item.id, p_entry, item.key, item.priority,
                                          item.announce);
            admitted := true;
        ELSE
            aggregate_full := control.max_runs IS NOT NULL
                AND flowhost.fc_held(p_flow, '', NULL) >= control.max_runs;
            INSERT INTO flowhost.flow_waiters
                (flow, step, run_id, job_step, attempt, key, priority, reason)
            VALUES (p_flow, '', item.id, p_entry, 1, item.key, item.priority,
                    CASE WHEN aggregate_full THEN 'max_runs' ELSE 'key_concurrency' END)
            ON CONFLICT DO NOTHING;
            INSERT INTO flowhost.events (run_id, type, data)
            VALUES (item.id, 'flow.waiting',
                    jsonb_build_object(
                        'reason', CASE WHEN aggregate_full THEN 'max_runs'
                                       ELSE 'key_concurrency' END,
                        'limit', CASE WHEN aggregate_full THEN control.max_runs
                                      ELSE control.key_concurrency END)
                    || CASE WHEN item.key IS NULL THEN '{}'::jsonb
                            ELSE jsonb_build_object('key', item.key) END);
            admitted := false;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Steps that became ready, some with a limit: through the step gate. %(steps)s items:
-- {run_id, step, attempt, key, priority}.
CREATE FUNCTION flowhost.fc_schedule_steps(p_flow text, p_limits jsonb, p_steps jsonb)
    RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    control flowhost.flow_controls;
    item record;
    waiting integer := 0;
BEGIN
    control := flowhost.fc_lock(p_flow, p_limits);
    PERFORM flowhost.fc_grant(p_flow);
    FOR item IN
        SELECT s.run_id, s.step, COALESCE(s.attempt, 1) AS attempt, s.key,
               COALESCE(s.priority, 0) AS priority
        FROM jsonb_to_recordset(p_steps)
            AS s(run_id uuid, step text, attempt integer, key text, priority integer)
    LOOP
        IF NOT flowhost.fc_gate_step(control, item.run_id, item.step, item.attempt, item.key,
                                     item.priority) THEN
            waiting := waiting + 1;
        END IF;
    END LOOP;
    RETURN waiting;
END
$$;

-- A run an operator brought back (retry) or made (replay) holds its run slots at once, even
-- over the limit: an explicit action is not made to wait. Its steps still pass the step gate.
CREATE FUNCTION flowhost.fc_hold_run(p_flow text, p_limits jsonb, p_run uuid, p_key text)
    RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    IF (p_limits ->> 'max_runs') IS NULL AND (p_limits ->> 'key_concurrency') IS NULL THEN
        RETURN;
    END IF;
    PERFORM flowhost.fc_lock(p_flow, p_limits);
    IF NOT EXISTS (SELECT 1 FROM flowhost.flow_holds WHERE run_id = p_run AND step = '') THEN
        PERFORM flowhost.fc_take(p_flow, '', p_key, p_run);
    END IF;
END
$$;

-- A host registered the flow: record its limits; when they changed, waiters may now fit.
-- Flows that never had limits get no row.
CREATE FUNCTION flowhost.fc_register(p_flow text, p_limits jsonb) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    wanted_max integer := (p_limits ->> 'max_runs')::integer;
    wanted_key integer := (p_limits ->> 'key_concurrency')::integer;
    wanted_steps jsonb := COALESCE(p_limits -> 'step_limits', '{}'::jsonb);
BEGIN
    IF wanted_max IS NULL AND wanted_key IS NULL AND wanted_steps = '{}'::jsonb THEN
        UPDATE flowhost.flow_controls
        SET max_runs = NULL, key_concurrency = NULL, step_limits = '{}', updated_at = now()
        WHERE flow = p_flow
          AND (max_runs IS NOT NULL OR key_concurrency IS NOT NULL OR step_limits <> '{}');
    ELSE
        INSERT INTO flowhost.flow_controls AS c (flow, max_runs, key_concurrency, step_limits)
        VALUES (p_flow, wanted_max, wanted_key, wanted_steps)
        ON CONFLICT (flow) DO UPDATE
            SET max_runs = EXCLUDED.max_runs,
                key_concurrency = EXCLUDED.key_concurrency,
                step_limits = EXCLUDED.step_limits,
                updated_at = now()
            WHERE (c.max_runs, c.key_concurrency, c.step_limits)
                  IS DISTINCT FROM (EXCLUDED.max_runs, EXCLUDED.key_concurrency,
                                    EXCLUDED.step_limits);
    END IF;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    -- The row is locked by the statement that changed it.
    RETURN flowhost.fc_grant(p_flow);
END
$$;

-- The periodic sweep each host runs: grant what skipped waiters (rows busy during a grant) or
-- a limit raised elsewhere left waiting. A flow whose lock is taken is busy granting already.
CREATE FUNCTION flowhost.fc_grant_waiting() RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    waiting_flow text;
    granted integer := 0;
BEGIN
    FOR waiting_flow IN
        SELECT c.flow FROM flowhost.flow_controls AS c
        WHERE EXISTS (SELECT 1 FROM flowhost.flow_waiters AS w WHERE w.flow = c.flow)
        ORDER BY c.flow
    LOOP
        PERFORM 1 FROM flowhost.flow_controls WHERE flow = waiting_flow
        FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            granted := granted + flowhost.fc_grant(waiting_flow);
        END IF;
    END LOOP;
    RETURN granted;
END
$$;

-- A delayed run whose time came: marks it started (its row locked) and answers its key and
-- priority; or says how many seconds remain (a debounce pushed it back), or that there is
-- nothing to start (it was canceled, or another host started it).
CREATE FUNCTION flowhost.fc_take_due_start(
    p_run uuid, OUT due boolean, OUT wait_seconds double precision, OUT run_key text,
    OUT run_priority integer
)
    LANGUAGE plpgsql AS $$
DECLARE
    debounced timestamptz;
    planned timestamptz;
BEGIN
    due := false;
    SELECT start_at INTO debounced FROM flowhost.debounce_keys WHERE run_id = p_run;
    IF FOUND THEN
        DELETE FROM flowhost.debounce_keys
        WHERE run_id = p_run AND start_at <= clock_timestamp();
        IF NOT FOUND THEN
            SELECT start_at INTO debounced FROM flowhost.debounce_keys WHERE run_id = p_run;
            IF FOUND THEN
                wait_seconds := greatest(extract(epoch FROM debounced - clock_timestamp()), 0.001);
            END IF;
            RETURN;
        END IF;
    END IF;
    UPDATE flowhost.runs AS r SET start_at = NULL, version = r.version + 1
    WHERE r.id = p_run AND r.status = 'queued' AND r.start_at IS NOT NULL
      AND (debounced IS NOT NULL OR r.start_at <= clock_timestamp())
    RETURNING r.concurrency_key, r.priority INTO run_key, run_priority;
    IF FOUND THEN
        due := true;
        RETURN;
    END IF;
    SELECT r.start_at INTO planned FROM flowhost.runs AS r
    WHERE r.id = p_run AND r.status = 'queued' AND r.start_at IS NOT NULL;
    IF FOUND THEN
        wait_seconds := greatest(extract(epoch FROM planned - clock_timestamp()), 0.001);
    END IF;
END
$$;

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

-- Triggers (docs/triggers.md): a registry row per trigger, the flows subscribed to it, a
-- stream of what happened to it, its fire counts, and the delivery keys that make a repeated
-- delivery start nothing.

-- The registry. `type` is checked by flowhost (flowhost.triggers.declarations knows each type
-- and its config); the database only keeps it a short lowercase word, so that a new type needs
-- no migration.
CREATE TABLE flowhost.triggers (
    name text PRIMARY KEY CONSTRAINT triggers_name_check CHECK (name ~ '^[A-Za-z0-9_.:-]{1,200}$'),
    type text NOT NULL CONSTRAINT triggers_type_check CHECK (type ~ '^[a-z][a-z0-9_-]{0,31}$'),
    status text NOT NULL DEFAULT 'active'
        CONSTRAINT triggers_status_check CHECK (status IN ('active', 'retired', 'deprecated')),
    -- Who declared it: a function's config (`triggers.define`, re-applied by every host start)
    -- or the API.
    source text NOT NULL CONSTRAINT triggers_source_check CHECK (source IN ('config', 'api')),
    display_name text,
    description text,
    config jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Where a config trigger is declared ("file:line").
    declared_at text,
    -- Optimistic concurrency: every change of the trigger itself adds one.
    version integer NOT NULL DEFAULT 1,
    registered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    retired_at timestamptz,
    retired_reason text
);

-- Flows subscribed to a trigger. `auto`: a fire starts a run; `manual`: only a fire that names
-- the flow does. `source`: a function's config (synced at host start) or the API.
CREATE TABLE flowhost.trigger_subscriptions (
    trigger text NOT NULL REFERENCES flowhost.triggers (name) ON DELETE CASCADE,
    flow text NOT NULL,
    mode text NOT NULL DEFAULT 'auto'
        CONSTRAINT trigger_subscriptions_mode_check CHECK (mode IN ('auto', 'manual')),
    source text NOT NULL
        CONSTRAINT trigger_subscriptions_source_check CHECK (source IN ('config', 'api')),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (trigger, flow)
);
CREATE INDEX trigger_subscriptions_flow_idx ON flowhost.trigger_subscriptions (flow);

-- The trigger stream: append-only, one stream per trigger, ordered by id. Types:
-- trigger.registered, trigger.updated, trigger.retired, trigger.fired, trigger.replayed,
-- subscription.added, subscription.removed, and for event triggers that matched without firing
-- trigger.chain_stopped and trigger.fire_failed.
CREATE TABLE flowhost.trigger_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger text NOT NULL,
    type text NOT NULL,
    ts timestamptz NOT NULL DEFAULT clock_timestamp(),
    data jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX trigger_events_trigger_idx ON flowhost.trigger_events (trigger, id);
-- Replay by time range.
CREATE INDEX trigger_events_fired_idx ON flowhost.trigger_events (trigger, ts)
    WHERE type = 'trigger.fired';

CREATE FUNCTION flowhost.trigger_events_are_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'flowhost.trigger_events is append-only';
END
$$;
CREATE TRIGGER trigger_events_append_only BEFORE UPDATE ON flowhost.trigger_events
    FOR EACH ROW EXECUTE FUNCTION flowhost.trigger_events_are_append_only();

-- Fire counts, a projection of the trigger.fired events (rebuildable from them). Each fire adds
-- to one of a few rows per trigger (its slot), so that concurrent fires of one trigger do not
-- queue behind a single row lock until their commits; a trigger's count is the sum.
CREATE TABLE flowhost.trigger_fires (
    trigger text NOT NULL REFERENCES flowhost.triggers (name) ON DELETE CASCADE,
    slot smallint NOT NULL,
    fires bigint NOT NULL DEFAULT 0,
    last_fired_at timestamptz,
    PRIMARY KEY (trigger, slot)
);

-- Delivery keys (a webhook's delivery id, a broker's message id): the first fire with a key
-- records its trigger.fired event here; a repeated delivery gets that fire back. No foreign key:
-- its check would share-lock the trigger's row on every delivery.
CREATE TABLE flowhost.trigger_deliveries (
    trigger text NOT NULL,
    key text NOT NULL,
    event_id bigint,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (trigger, key)
);

-- What hosts compare to know their in-memory index of event triggers is current: a change of a
-- trigger's type, status or config adds one, and is announced at commit (NOTIFY
-- flowhost_triggers, payload: the new generation).
CREATE TABLE flowhost.trigger_registry (
    id boolean PRIMARY KEY DEFAULT true CONSTRAINT trigger_registry_one_row CHECK (id),
    generation bigint NOT NULL DEFAULT 0
);
INSERT INTO flowhost.trigger_registry DEFAULT VALUES;

CREATE FUNCTION flowhost.trigger_registry_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    current bigint;
BEGIN
    UPDATE flowhost.trigger_registry SET generation = generation + 1
    RETURNING generation INTO current;
    PERFORM pg_notify('flowhost_triggers', current::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER triggers_changed
    AFTER INSERT OR DELETE OR UPDATE OF type, status, config ON flowhost.triggers
    FOR EACH STATEMENT EXECUTE FUNCTION flowhost.trigger_registry_changed();

-- Schedules (docs/schedules.md): a row per schedule trigger: when it fires
-- next, the fires waiting behind its live runs, and its figures. Every host's scheduler claims
-- due rows with FOR UPDATE SKIP LOCKED and fires them in the transaction that moves next_fire
-- on, so each planned time fires once, whatever the number of hosts.
CREATE TABLE flowhost.schedules (
    trigger text PRIMARY KEY REFERENCES flowhost.triggers (name) ON DELETE CASCADE,
    -- The trigger version this row was computed from (0: never). A row behind its trigger
    -- does not fire until a scheduler has brought it up to date.
    trigger_version integer NOT NULL DEFAULT 0,
    -- What next_fire was computed from: the config's cron and zone, and its declared `enabled`
    -- (`enabled` follows the declaration when the declaration changes; enable and disable
    -- change it at runtime).
    cron text,
    timezone text,
    declared_enabled boolean,
    enabled boolean NOT NULL DEFAULT false,
    -- The earliest planned time not handled yet; NULL: it does not fire (disabled, retired, or
    -- no fire time left).
    next_fire timestamptz,
    -- Planned times waiting for the schedule's live runs to end (overlap "queue"), oldest first.
    queued timestamptz[] NOT NULL DEFAULT '{}',
    -- Runs the schedule started that were live when it last looked (what overlap looks at).
    live_runs uuid[] NOT NULL DEFAULT '{}',
    -- Figures, a projection of the trigger stream. Lag: from the planned time to the fire, of
    -- the fires that were not caught up or queued (those are late on purpose).
    last_planned_at timestamptz,
    last_fired_at timestamptz,
    last_lag_ms double precision,
    lag_fires bigint NOT NULL DEFAULT 0,
    lag_total_ms double precision NOT NULL DEFAULT 0,
    lag_max_ms double precision NOT NULL DEFAULT 0,
    -- Planned times that did not fire: overlap "skip" (or a full queue), dropped by the
    -- catch-up policy, or a fire that failed.
    skipped bigint NOT NULL DEFAULT 0,
    missed bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX schedules_next_fire_idx ON flowhost.schedules (next_fire)
    WHERE next_fire IS NOT NULL;
CREATE INDEX schedules_queued_idx ON flowhost.schedules (trigger)
    WHERE cardinality(queued) > 0;
-- Connectors (docs/connectors.md): each host's connection state per broker connector, the
-- leases of exclusive connectors, and the failure counts of broker messages that did not fire.
-- What a host's connection to a broker is doing. A host writes its own rows, and deletes them
-- when it stops; rows of a host that died stay until it is seen gone (flowhost.hosts).
CREATE TABLE flowhost.connector_states (
    connector text NOT NULL,
    host_id uuid NOT NULL,
    -- A host's consuming connection (its triggers') and its publishing one (ctx.publish).
    role text NOT NULL DEFAULT 'consume' CONSTRAINT connector_states_role_check
        CHECK (role IN ('consume', 'publish')),
    type text NOT NULL,
    state text NOT NULL CONSTRAINT connector_states_state_check
        CHECK (state IN ('connecting', 'connected', 'backing_off', 'standby', 'stopped')),
    -- Where it connects (scheme://host:port, never credentials).
    address text NOT NULL,
    exclusive boolean NOT NULL DEFAULT false,
    triggers text[] NOT NULL DEFAULT '{}',
    -- Failed attempts in a row, and when the next one is due (state backing_off).
    attempt integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error text,
    last_error_at timestamptz,
    connected_at timestamptz,
    -- Messages this host took from the connector (or published to it) since it started.
    messages bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (connector, host_id, role)
);

-- The holder of an exclusive connector: renewed by it before `expires_at`; any host may take a
-- lease that lapsed.
CREATE TABLE flowhost.connector_leases (
    connector text PRIMARY KEY,
    host_id uuid NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL
);

-- Messages whose fire failed, by trigger and the message's key: after the trigger's
-- max_failures the message is rejected (dead-lettered) and its row goes.
CREATE TABLE flowhost.connector_failures (
    trigger text NOT NULL,
    key text NOT NULL,
    failures integer NOT NULL DEFAULT 0,
    last_error text,
    first_failed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_failed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (trigger, key)
);
