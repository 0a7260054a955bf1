-- Webhook triggers: what the /hooks/{trigger} route caches of a trigger for a second.

-- name: webhook_trigger
SELECT type, status, config, version FROM flowhost.triggers WHERE name = %(name)s;

-- name: claim_deliveries
-- The delivery keys of a batch of fires of one trigger (sorted by the caller, so that two
-- batches wait for each other in one order): those returned are this batch's; the others were
-- taken by a fire that has committed (a concurrent one is waited for, as in claim_delivery).
INSERT INTO flowhost.trigger_deliveries (trigger, key)
SELECT %(trigger)s, k FROM unnest(%(keys)s::text[]) AS k
ON CONFLICT (trigger, key) DO NOTHING
RETURNING key;

-- name: fires_of_deliveries
SELECT d.key, e.id, e.ts, e.data
FROM flowhost.trigger_deliveries AS d
JOIN flowhost.trigger_events AS e ON e.id = d.event_id
WHERE d.trigger = %(trigger)s AND d.key = ANY (%(keys)s::text[]);

-- name: record_fires
-- A batch of fires of one trigger (`record_fire` for many): their trigger.fired events in
-- order, their count (in one slot), and their delivery keys' answers. Returns each event with
-- its fire id.
WITH fires AS (
    SELECT f.data, f.n
    FROM ROWS FROM (jsonb_to_recordset(%(fires)s::jsonb) AS (data jsonb))
        WITH ORDINALITY AS f(data, n)
), events AS (
    INSERT INTO flowhost.trigger_events (trigger, type, data)
    SELECT %(trigger)s, 'trigger.fired', data FROM fires ORDER BY n
    RETURNING id, ts, data
), counted AS (
    INSERT INTO flowhost.trigger_fires AS c (trigger, slot, fires, last_fired_at)
    SELECT %(trigger)s, %(slot)s, count(*), max(ts) FROM events HAVING count(*) > 0
    ON CONFLICT (trigger, slot) DO UPDATE
        SET fires = c.fires + EXCLUDED.fires,
            last_fired_at = GREATEST(c.last_fired_at, EXCLUDED.last_fired_at)
), delivered AS (
    UPDATE flowhost.trigger_deliveries AS d SET event_id = e.id
    FROM events AS e
    WHERE d.trigger = %(trigger)s AND d.key = e.data ->> 'delivery_key'
)
SELECT id, ts, data ->> 'fire_id' AS fire_id FROM events;
