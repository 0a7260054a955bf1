"""The durable job queue (PgQueuer behind one adapter module)."""
