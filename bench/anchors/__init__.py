"""Reference systems a scenario measures itself against, in the same process run."""

from bench.anchors.asyncio_tick import asyncio_tick_lag
from bench.anchors.pgqueuer_drain import DrainResult, pgqueuer_drain
from bench.anchors.pgqueuer_latency import pgqueuer_latency

__all__ = ["DrainResult", "asyncio_tick_lag", "pgqueuer_drain", "pgqueuer_latency"]
