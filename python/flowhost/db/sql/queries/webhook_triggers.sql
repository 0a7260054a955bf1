-- Webhook triggers: what the /hooks/{trigger} route caches of a trigger for a second.

-- name: webhook_trigger
SELECT type, status, config, version FROM flowhost.triggers WHERE name = %(name)s;
