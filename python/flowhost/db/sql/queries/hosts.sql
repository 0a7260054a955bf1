-- Live hosts.

-- name: host_alive
INSERT INTO flowhost.hosts (id, hostname, pid, flows)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(flows)s)
ON CONFLICT (id) DO UPDATE SET flows = EXCLUDED.flows, last_seen = now();

-- name: host_gone
DELETE FROM flowhost.hosts WHERE id = %(id)s;

-- name: hosts_serving
SELECT count(*) AS hosts FROM flowhost.hosts
WHERE %(flow)s = ANY (flows) AND last_seen > now() - make_interval(secs => %(stale_after)s);
