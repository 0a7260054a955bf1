-- 0010 (0012 at merge): realtime streams (docs/realtime.md). Each statement that appends events
-- announces, at its commit, the range of event ids it appended: NOTIFY flowhost_events
-- '<first id>:<last id>'. One notification per statement, not per event or per run: a
-- completion batch of a hundred steps is one. Each process has one listener that reads the
-- announced ranges once per wake-up for all its open streams (flowhost.realtime).
CREATE FUNCTION flowhost.announce_events() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flowhost_events', min(id)::text || ':' || max(id)::text)
    FROM appended
    HAVING count(*) > 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_announce AFTER INSERT ON flowhost.events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION flowhost.announce_events();
