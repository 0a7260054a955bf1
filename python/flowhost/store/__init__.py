"""The event store: per-run event streams and the projections kept beside them."""
