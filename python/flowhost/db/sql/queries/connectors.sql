-- Connectors: connection states, leases of exclusive connectors, failure counts of messages.

-- name: upsert_connector_state
INSERT INTO flowhost.connector_states AS s
    (connector, host_id, role, type, state, address, exclusive, triggers, attempt, next_attempt_at,
     last_error, last_error_at, connected_at, messages, updated_at)
VALUES (%(connector)s, %(host_id)s, %(role)s, %(type)s, %(state)s, %(address)s, %(exclusive)s,
        %(triggers)s, %(attempt)s, %(next_attempt_at)s, %(last_error)s, %(last_error_at)s,
        %(connected_at)s, %(messages)s, clock_timestamp())
ON CONFLICT (connector, host_id, role) DO UPDATE
    SET type = EXCLUDED.type, state = EXCLUDED.state, address = EXCLUDED.address,
        exclusive = EXCLUDED.exclusive, triggers = EXCLUDED.triggers,
        attempt = EXCLUDED.attempt, next_attempt_at = EXCLUDED.next_attempt_at,
        last_error = EXCLUDED.last_error, last_error_at = EXCLUDED.last_error_at,
        connected_at = EXCLUDED.connected_at, messages = EXCLUDED.messages,
        updated_at = EXCLUDED.updated_at;

-- name: delete_connector_state
DELETE FROM flowhost.connector_states
WHERE host_id = %(host_id)s AND (%(connector)s::text IS NULL OR connector = %(connector)s)
  AND (%(role)s::text IS NULL OR role = %(role)s);

-- name: connector_states
-- Every host's connection states, with whether the host is alive (its heartbeat is recent) and
-- who holds each connector's lease.
SELECT s.connector, s.host_id, s.role, s.type, s.state, s.address, s.exclusive, s.triggers, s.attempt,
       s.next_attempt_at, s.last_error, s.last_error_at, s.connected_at, s.messages,
       s.updated_at,
       (h.id IS NOT NULL AND h.last_seen > now() - make_interval(secs => %(stale_after)s))
           AS host_alive,
       h.hostname, h.pid,
       (s.role = 'consume' AND l.host_id = s.host_id AND l.expires_at > clock_timestamp())
           AS holds_lease
FROM flowhost.connector_states AS s
LEFT JOIN flowhost.hosts AS h ON h.id = s.host_id
LEFT JOIN flowhost.connector_leases AS l ON l.connector = s.connector
WHERE (%(connector)s::text IS NULL OR s.connector = %(connector)s)
ORDER BY s.connector, s.host_id, s.role;

-- name: take_connector_lease
-- Take the lease if it is free, lapsed or already ours (which renews it); returns a row only
-- when this host holds it now.
INSERT INTO flowhost.connector_leases AS l (connector, host_id, expires_at)
VALUES (%(connector)s, %(host_id)s, clock_timestamp() + make_interval(secs => %(ttl)s))
ON CONFLICT (connector) DO UPDATE
    SET host_id = EXCLUDED.host_id, expires_at = EXCLUDED.expires_at,
        acquired_at = CASE WHEN l.host_id = EXCLUDED.host_id THEN l.acquired_at
                           ELSE clock_timestamp() END
    WHERE l.host_id = EXCLUDED.host_id OR l.expires_at <= clock_timestamp()
RETURNING host_id, acquired_at, expires_at;

-- name: release_connector_lease
DELETE FROM flowhost.connector_leases
WHERE connector = %(connector)s AND host_id = %(host_id)s;

-- name: connector_lease
SELECT connector, host_id, acquired_at, expires_at, expires_at > clock_timestamp() AS live
FROM flowhost.connector_leases WHERE connector = %(connector)s;

-- name: expire_delivery_key
-- A key of a message without an id (its bytes' hash) is only good for the trigger's
-- dedupe_window: past it, an identical message is a new delivery.
DELETE FROM flowhost.trigger_deliveries
WHERE trigger = %(trigger)s AND key = %(key)s
  AND created_at < clock_timestamp() - make_interval(secs => %(window)s);

-- name: count_connector_failure
INSERT INTO flowhost.connector_failures AS f (trigger, key, failures, last_error)
VALUES (%(trigger)s, %(key)s, 1, %(error)s)
ON CONFLICT (trigger, key) DO UPDATE
    SET failures = f.failures + 1, last_error = EXCLUDED.last_error,
        last_failed_at = clock_timestamp()
RETURNING failures;

-- name: clear_connector_failures
DELETE FROM flowhost.connector_failures
WHERE trigger = ANY (%(triggers)s::text[]) AND key = %(key)s;

-- name: connector_failures_of
SELECT trigger, key, failures, last_error, first_failed_at, last_failed_at
FROM flowhost.connector_failures WHERE trigger = %(trigger)s ORDER BY last_failed_at;

-- name: broker_triggers
-- The active mqtt and amqp triggers and the registry's generation, from one snapshot.
SELECT (SELECT generation FROM flowhost.trigger_registry) AS generation,
       COALESCE(jsonb_agg(jsonb_build_object('name', name, 'type', type, 'config', config)
                          ORDER BY name), '[]'::jsonb) AS triggers
FROM flowhost.triggers
WHERE type IN ('mqtt', 'amqp') AND status = 'active';

-- name: forget_dead_connector_states
-- State rows of hosts not seen for %(dead_after)s seconds (killed, never stopped cleanly).
DELETE FROM flowhost.connector_states AS s
WHERE s.updated_at < clock_timestamp() - make_interval(secs => %(dead_after)s)
  AND NOT EXISTS (
      SELECT 1 FROM flowhost.hosts AS h
      WHERE h.id = s.host_id AND h.last_seen > now() - make_interval(secs => %(dead_after)s)
  );

-- name: connector_leases
SELECT connector, host_id, acquired_at, expires_at, expires_at > clock_timestamp() AS live
FROM flowhost.connector_leases ORDER BY connector;
