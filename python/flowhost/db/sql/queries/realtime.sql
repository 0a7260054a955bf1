-- Realtime streams (flowhost.realtime, docs/realtime.md): what the fan-out reads when events
-- are announced, and the backlogs streams replay before they go live.

-- name: announced_events
-- The events of the announced id ranges (lows[i]..highs[i]) that open streams want: those of
-- the runs in `runs` (sent in binary: hundreds of ids, each quoted in text), and with
-- `run_changes` the run status changes (flow.*) of every run. One statement per wake-up of the
-- fan-out, however many streams are open.
SELECT e.id, e.run_id, r.flow, e.type, e.step, e.attempt, e.ts, e.data
FROM unnest(%(lows)s::bigint[], %(highs)s::bigint[]) AS a(lo, hi)
JOIN flowhost.events AS e ON e.id BETWEEN a.lo AND a.hi
LEFT JOIN flowhost.runs AS r ON r.id = e.run_id
WHERE e.run_id = ANY (%(runs)b::uuid[])
   OR (%(run_changes)s AND starts_with(e.type, 'flow.'))
ORDER BY e.id;

-- name: run_stream_backlog
-- A run's events after %(after)s, a page at a time, with the run's status read first in the
-- same statement's snapshot: when it is over, the backlog holds its last events.
SELECT e.id, e.run_id, r.flow, e.type, e.step, e.attempt, e.ts, e.data
FROM flowhost.events AS e
JOIN flowhost.runs AS r ON r.id = e.run_id
WHERE e.run_id = %(run_id)s AND e.id > %(after)s
ORDER BY e.id
LIMIT %(limit)s;

-- name: run_stream_status
SELECT status FROM flowhost.runs WHERE id = %(run_id)s;

-- name: changes_backlog
-- Run status changes (flow.* events) of every run after %(after)s, a page at a time.
SELECT e.id, e.run_id, r.flow, e.type, e.step, e.attempt, e.ts, e.data
FROM flowhost.events AS e
LEFT JOIN flowhost.runs AS r ON r.id = e.run_id
WHERE e.id > %(after)s AND starts_with(e.type, 'flow.')
ORDER BY e.id
LIMIT %(limit)s;

-- name: register_stream_listener
-- A process with streams open: announcements are made while its row is fresh (it refreshes
-- it every few seconds with the same statement).
-- Registrations of processes long gone (killed before they could remove theirs) go with it.
WITH gone AS (
    DELETE FROM flowhost.stream_listeners
    WHERE seen_at < clock_timestamp() - interval '10 minutes'
)
INSERT INTO flowhost.stream_listeners (id) VALUES (%(id)s)
ON CONFLICT (id) DO UPDATE SET seen_at = clock_timestamp();

-- name: stream_horizon
-- Run after the registration committed: every transaction that may have missed it (its
-- events not announced) has an xid below this.
SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS horizon;

-- name: stream_settled
-- Whether every transaction below the horizon has ended (their events are then in the table).
SELECT pg_snapshot_xmin(pg_current_snapshot()) >= %(horizon)s::xid8 AS settled;

-- name: unregister_stream_listener
DELETE FROM flowhost.stream_listeners WHERE id = %(id)s;

-- name: last_event_id
-- Where a stream of run status changes that replays nothing starts.
SELECT COALESCE(max(id), 0) AS id FROM flowhost.events;

-- name: run_has_events_after
SELECT EXISTS (
    SELECT 1 FROM flowhost.events WHERE run_id = %(run_id)s AND id > %(after)s
) AS more;
