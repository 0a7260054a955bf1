"""Reference systems a scenario measures itself against, in the same process run."""

from bench.anchors.pgqueuer_drain import DrainResult, pgqueuer_drain

__all__ = ["DrainResult", "pgqueuer_drain"]
