-- 0010: realtime streams (docs/realtime.md). Each statement that appends events
-- announces, at its commit, the range of event ids it appended: NOTIFY flowhost_events
-- '<first id>:<last id>'. One notification per statement, not per event or per run: a
-- completion batch of a hundred steps is one. Each process has one listener that reads the
-- announced ranges once per wake-up for all its open streams (flowhost.realtime), and
-- announcements are made only while such a listener is registered.
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
