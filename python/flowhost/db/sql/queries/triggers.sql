-- Triggers: the registry, subscriptions, the trigger stream, fire counts and delivery keys.

-- name: trigger_for_fire
-- What firing a trigger needs in one round trip: the trigger, and each subscribed flow with the
-- hash of the definition last registered for it (NULL: no host ever registered the flow).
SELECT t.name, t.type, t.status, t.config,
       COALESCE(jsonb_agg(jsonb_build_object('flow', s.flow, 'mode', s.mode,
                                             'hash', f.definition_hash)
                          ORDER BY s.flow) FILTER (WHERE s.flow IS NOT NULL),
                '[]'::jsonb) AS subscriptions
FROM flowhost.triggers AS t
LEFT JOIN flowhost.trigger_subscriptions AS s ON s.trigger = t.name
LEFT JOIN flowhost.flows AS f ON f.name = s.flow
WHERE t.name = %(name)s
GROUP BY t.name;

-- name: stored_definitions
SELECT name, definition, definition_hash FROM flowhost.flows WHERE name = ANY (%(names)s::text[]);

-- name: claim_delivery
-- The first fire with a delivery key takes it; a concurrent one waits for that fire's commit
-- (the primary key) and then finds the key taken.
INSERT INTO flowhost.trigger_deliveries (trigger, key) VALUES (%(trigger)s, %(key)s)
ON CONFLICT (trigger, key) DO NOTHING
RETURNING key;

-- name: fire_of_delivery
SELECT e.id, e.ts, e.data
FROM flowhost.trigger_deliveries AS d
JOIN flowhost.trigger_events AS e ON e.id = d.event_id
WHERE d.trigger = %(trigger)s AND d.key = %(key)s;

-- name: record_fire
-- A fire's trigger.fired event, its count (in its slot), and its delivery key's answer.
WITH event AS (
    INSERT INTO flowhost.trigger_events (trigger, type, data)
    VALUES (%(trigger)s, 'trigger.fired', %(data)s)
    RETURNING id, ts
), counted AS (
    INSERT INTO flowhost.trigger_fires AS c (trigger, slot, fires, last_fired_at)
    SELECT %(trigger)s, %(slot)s, 1, ts FROM event
    ON CONFLICT (trigger, slot) DO UPDATE
        SET fires = c.fires + 1,
            last_fired_at = GREATEST(c.last_fired_at, EXCLUDED.last_fired_at)
), delivered AS (
    UPDATE flowhost.trigger_deliveries SET event_id = (SELECT id FROM event)
    WHERE trigger = %(trigger)s AND key = %(delivery_key)s::text
)
SELECT id, ts FROM event;

-- name: append_trigger_events
-- The events: a JSON array of {trigger, type, data}, appended in order.
INSERT INTO flowhost.trigger_events (trigger, type, data)
SELECT e.trigger, e.type, COALESCE(e.data, '{}'::jsonb)
FROM ROWS FROM (jsonb_to_recordset(%(events)s::jsonb) AS (trigger text, type text, data jsonb))
    WITH ORDINALITY AS e(trigger, type, data, n)
ORDER BY n;

-- name: trigger_depths
-- How many event-trigger hops led to each run (its flow.started event says; 0 when none).
SELECT DISTINCT ON (run_id) run_id,
       COALESCE((data #>> '{trigger,depth}')::integer, 0) AS depth
FROM flowhost.events
WHERE run_id = ANY (%(run_ids)s::uuid[]) AND type = 'flow.started'
ORDER BY run_id, id;

-- name: event_triggers_snapshot
-- The active event triggers and the registry's generation, from one snapshot.
SELECT (SELECT generation FROM flowhost.trigger_registry) AS generation,
       COALESCE(jsonb_agg(jsonb_build_object('name', name, 'config', config) ORDER BY name),
                '[]'::jsonb) AS triggers
FROM flowhost.triggers
WHERE type = 'event' AND status = 'active';

-- name: trigger_registry_generation
SELECT generation FROM flowhost.trigger_registry;

-- name: lock_trigger_sync
-- Hosts syncing their functions' triggers take turns (until their transaction ends): the second
-- sees what the first wrote, and finds nothing left to do.
SELECT pg_advisory_xact_lock(7370846712830165862);

-- name: triggers_for_update
SELECT name, type, status, source, display_name, description, config, declared_at, version
FROM flowhost.triggers ORDER BY name FOR UPDATE;

-- name: trigger_for_update
SELECT name, type, status, source, display_name, description, config, declared_at, version
FROM flowhost.triggers WHERE name = %(name)s FOR UPDATE;

-- name: all_subscriptions
SELECT trigger, flow, mode, source FROM flowhost.trigger_subscriptions ORDER BY trigger, flow;

-- name: subscriptions_of
SELECT trigger, flow, mode, source FROM flowhost.trigger_subscriptions
WHERE trigger = %(trigger)s ORDER BY flow;

-- name: insert_trigger
INSERT INTO flowhost.triggers
    (name, type, source, display_name, description, config, declared_at)
VALUES (%(name)s, %(type)s, %(source)s, %(display_name)s, %(description)s, %(config)s,
        %(declared_at)s)
ON CONFLICT (name) DO NOTHING
RETURNING version;

-- name: update_trigger
-- A change of the trigger itself: its version goes up. Leaving retirement clears its marks.
UPDATE flowhost.triggers
SET type = %(type)s, status = %(status)s, source = %(source)s,
    display_name = %(display_name)s, description = %(description)s, config = %(config)s,
    declared_at = %(declared_at)s, version = version + 1, updated_at = clock_timestamp(),
    retired_at = CASE WHEN %(status)s = 'retired' THEN retired_at END,
    retired_reason = CASE WHEN %(status)s = 'retired' THEN retired_reason END
WHERE name = %(name)s
RETURNING version;

-- name: retire_trigger
UPDATE flowhost.triggers
SET status = 'retired', retired_at = clock_timestamp(), retired_reason = %(reason)s,
    version = version + 1, updated_at = clock_timestamp()
WHERE name = %(name)s AND status <> 'retired'
RETURNING version;

-- name: upsert_subscription
INSERT INTO flowhost.trigger_subscriptions AS s (trigger, flow, mode, source)
VALUES (%(trigger)s, %(flow)s, %(mode)s, %(source)s)
ON CONFLICT (trigger, flow) DO UPDATE SET mode = EXCLUDED.mode, source = EXCLUDED.source;

-- name: delete_subscription
DELETE FROM flowhost.trigger_subscriptions WHERE trigger = %(trigger)s AND flow = %(flow)s;

-- name: list_triggers
-- Triggers with their subscriptions and figures, by name (after a name, for paging).
SELECT t.name, t.type, t.status, t.source, t.display_name, t.description, t.config,
       t.declared_at, t.version, t.registered_at, t.updated_at, t.retired_at, t.retired_reason,
       COALESCE(f.fires, 0) AS total_fires, f.last_fired_at,
       COALESCE(s.subscriptions, '[]'::jsonb) AS subscriptions
FROM flowhost.triggers AS t
LEFT JOIN LATERAL (
    SELECT sum(fires)::bigint AS fires, max(last_fired_at) AS last_fired_at
    FROM flowhost.trigger_fires WHERE trigger = t.name
) AS f ON true
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object('flow', flow, 'mode', mode, 'source', source)
                     ORDER BY flow) AS subscriptions
    FROM flowhost.trigger_subscriptions WHERE trigger = t.name
) AS s ON true
WHERE (%(name)s::text IS NULL OR t.name = %(name)s)
  AND (%(type)s::text IS NULL OR t.type = %(type)s)
  AND (%(status)s::text IS NULL OR t.status = %(status)s)
  AND (%(after)s::text IS NULL OR t.name > %(after)s)
ORDER BY t.name
LIMIT %(limit)s;

-- name: trigger_events_of
SELECT id, type, ts, data FROM flowhost.trigger_events
WHERE trigger = %(trigger)s AND id > %(after)s
  AND (%(types)s::text[] IS NULL OR type = ANY (%(types)s::text[]))
ORDER BY id
LIMIT %(limit)s;

-- name: latest_trigger_events
SELECT id, type, ts, data FROM (
    SELECT id, type, ts, data FROM flowhost.trigger_events
    WHERE trigger = %(trigger)s
      AND (%(types)s::text[] IS NULL OR type = ANY (%(types)s::text[]))
    ORDER BY id DESC
    LIMIT %(limit)s
) AS latest
ORDER BY id;

-- name: fires_to_replay
-- Fires of a trigger (not replays themselves) by time range and/or the last N, oldest
-- first; at most the limit.
SELECT id, ts, data FROM (
    SELECT id, ts, data FROM flowhost.trigger_events
    WHERE trigger = %(trigger)s AND type = 'trigger.fired'
      AND NOT data ? 'replay_of'
      AND (%(since)s::timestamptz IS NULL OR ts >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
    ORDER BY id DESC
    LIMIT %(limit)s
) AS picked
ORDER BY id;

-- name: lock_trigger_fires
-- Rebuilding the fire counts: concurrent fires (which count in the statement that appends their
-- event) wait, or are waited for, so that none is counted twice or lost.
LOCK TABLE flowhost.trigger_fires IN EXCLUSIVE MODE;

-- name: clear_trigger_fires
DELETE FROM flowhost.trigger_fires;

-- name: count_trigger_fires
-- The fire counts, recomputed from the trigger.fired events.
INSERT INTO flowhost.trigger_fires (trigger, slot, fires, last_fired_at)
SELECT e.trigger, 0, count(*), max(e.ts)
FROM flowhost.trigger_events AS e
JOIN flowhost.triggers AS t ON t.name = e.trigger
WHERE e.type = 'trigger.fired'
GROUP BY e.trigger;
