"""Postgres access: the connection pool, the SQL of flowhost, migrations, the embedded server."""
