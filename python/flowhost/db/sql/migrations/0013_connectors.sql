-- 0013: connectors (docs/connectors.md). Each host's connection state per broker connector,
-- the leases that let one host at a time hold an exclusive connector, and the failure counts
-- of broker messages that did not fire (dead-lettered after a trigger's max_failures).

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
