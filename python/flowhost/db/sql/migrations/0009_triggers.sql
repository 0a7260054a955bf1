-- 0009: triggers (docs/triggers.md). A registry row per trigger, the flows subscribed to it, a
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
