-- Live hosts.

-- name: host_alive
-- A host says it is alive, with the flows it serves and their definitions (flow -> hash); the
-- definitions it serves are marked served now (at most every 10 s, to spare writes).
WITH alive AS (
    INSERT INTO flowhost.hosts (id, hostname, pid, flows, definitions)
    VALUES (%(id)s, %(hostname)s, %(pid)s, %(flows)s, %(definitions)s)
    ON CONFLICT (id) DO UPDATE
        SET flows = EXCLUDED.flows, definitions = EXCLUDED.definitions, last_seen = now()
)
UPDATE flowhost.flow_versions AS v
SET last_served_at = now()
FROM jsonb_each_text(%(definitions)s::jsonb) AS d (flow, definition_hash)
WHERE v.flow = d.flow AND v.definition_hash = d.definition_hash
  AND v.last_served_at < now() - interval '10 seconds';

-- name: host_gone
DELETE FROM flowhost.hosts WHERE id = %(id)s;

-- name: hosts_serving
-- Live hosts serving definition %(definition_hash)s of %(flow)s.
SELECT count(*) AS hosts FROM flowhost.hosts
WHERE definitions ->> %(flow)s = %(definition_hash)s
  AND last_seen > now() - make_interval(secs => %(stale_after)s);
