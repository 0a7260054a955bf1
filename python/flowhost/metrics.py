"""Prometheus metrics of a flowhost process, served at `/metrics` (docs/metrics.md).

What the hot paths record costs an in-process observation (no I/O, no SQL): histograms and
counters below. What needs SQL (queue depth, awaiting runs, dead tuples) is read when
`/metrics` is scraped, at most every DATABASE_FIGURES_TTL seconds, by `refresh`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from flowhost.db.database import Database
from flowhost.db.queries import QUERIES
from flowhost.errors import FlowhostError
from flowhost.store import dashboard

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

# Seconds: from a millisecond to a few minutes.
FAST_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SLOW_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip

ENQUEUE_TO_START = Histogram(
    "flowhost_step_enqueue_to_start_seconds",
    "From a step job's due time (enqueued, or its delay over) to a host picking it up.",
    ["flow"],
    buckets=SLOW_BUCKETS,
    registry=REGISTRY,
)
STEP_DURATION = Histogram(
    "flowhost_step_duration_seconds",
    "Duration of step attempts on this host, from the start of the handler to its result.",
    ["flow", "step"],
    buckets=SLOW_BUCKETS,
    registry=REGISTRY,
)
STEPS = Counter(
    "flowhost_steps",
    "Step attempts ended on this host, by outcome: completed, retried (failed with attempts "
    "left), failed (failed, none left).",
    ["flow", "step", "status"],
    registry=REGISTRY,
)
RPC = Histogram(
    "flowhost_worker_rpc_seconds",
    "Calls between the host and its child processes: `execute` is the host's call to a child "
    "(the step included), the others are a child's calls served by the host (state.get, "
    "emit, flow.start, ...).",
    ["runtime", "method"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_ACK = Histogram(
    "flowhost_webhook_ack_seconds",
    "From a webhook request's arrival to its answer (the run durably enqueued for a 2xx).",
    ["route", "status"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
TICK_LAG = Histogram(
    "flowhost_schedule_tick_lag_seconds",
    "From a schedule's fire time to its run being enqueued.",
    ["schedule"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
QUEUE_JOBS = Gauge(
    "flowhost_queue_jobs",
    "Jobs in the queue by entrypoint (one per flow, plus awaits) and status (queued, picked).",
    ["entrypoint", "status"],
    registry=REGISTRY,
)
AWAITING_RUNS = Gauge("flowhost_runs_awaiting", "Runs waiting on an await.", registry=REGISTRY)
DEAD_TUPLES = Gauge(
    "flowhost_table_dead_tuples",
    "Dead tuples of the hot tables (pg_stat_user_tables.n_dead_tup): what vacuum has to do.",
    ["table"],
    registry=REGISTRY,
)
CHILDREN = Gauge(
    "flowhost_worker_children",
    "Live child processes of this host's supervisor, by runtime.",
    ["runtime"],
    registry=REGISTRY,
)
STREAMS = Gauge(
    "flowhost_stream_subscribers",
    "Open realtime streams (SSE, runs logs --follow) in this process.",
    registry=REGISTRY,
)
STREAM_READS = Counter(
    "flowhost_stream_reads",
    "Reads of announced events by the realtime fan-out (one per wake-up, for all streams).",
    registry=REGISTRY,
)
STREAM_LAGS = Counter(
    "flowhost_stream_lags",
    "Streams dropped from the live feed for reading too slowly (they catch up from the table).",
    registry=REGISTRY,
)
CONNECTOR_STATE = Gauge(
    "flowhost_connector_state",
    "This host's connections to each broker connector (docs/connectors.md), by role (consume, "
    "publish): 1 for its state now (connecting, connected, backing_off, standby), 0 for the "
    "others.",
    ["connector", "role", "state"],
    registry=REGISTRY,
)
CONNECTOR_MESSAGES = Counter(
    "flowhost_connector_messages",
    "Broker messages this host fired and settled, by connector and verdict (ack, requeue, reject).",
    ["connector", "verdict"],
    registry=REGISTRY,
)
CONNECTOR_PUBLISHES = Counter(
    "flowhost_connector_publishes",
    "Messages steps published through this host, by connector and outcome (published, failed).",
    ["connector", "outcome"],
    registry=REGISTRY,
)
HTTP_ACTIONS = Counter(
    "flowhost_http_actions",
    "HTTP requests steps made through this host (ctx.http), by outcome (ok, error).",
    ["outcome"],
    registry=REGISTRY,
)
CONNECTOR_STATES = ("connecting", "connected", "backing_off", "standby")

# How old the figures read from the database may be when scraped.
DATABASE_FIGURES_TTL = 5.0
# A scrape does not wait longer than this for them (it serves the last ones instead).
DATABASE_FIGURES_TIMEOUT = 2.0


class StreamSource(Protocol):
    @property
    def subscribers(self) -> int: ...


# Sources of gauges this module cannot see, set by their owners: the host's supervisor
# (children by runtime; None: no host in this process) and the apps' fan-outs.
children_source: Callable[[], dict[str, int]] | None = None
stream_sources: weakref.WeakSet[StreamSource] = weakref.WeakSet()

_figures_read_at = 0.0
_refreshing = False


def observe_enqueue_to_start(flow: str, due: datetime) -> None:
    waited = (datetime.now(UTC) - due).total_seconds()
    ENQUEUE_TO_START.labels(flow).observe(max(waited, 0.0))


def observe_attempt(flow: str, step: str, status: str, seconds: float | None) -> None:
    STEPS.labels(flow, step, status).inc()
    if seconds is not None:
        STEP_DURATION.labels(flow, step).observe(seconds)


def observe_connector_state(connector: str, state: str | None, role: str = "consume") -> None:
    """The state of the connector's connection of `role` now; None: it stopped (its series
    go)."""
    for known in CONNECTOR_STATES:
        if state is None:
            with contextlib.suppress(KeyError):
                CONNECTOR_STATE.remove(connector, role, known)
        else:
            CONNECTOR_STATE.labels(connector, role, known).set(1 if known == state else 0)


def observe_webhook_ack(route: str, status: int, started: float) -> None:
    """`started`: time.perf_counter() when the request arrived."""
    WEBHOOK_ACK.labels(route, str(status)).observe(time.perf_counter() - started)


async def refresh(database: Database | None) -> None:
    """Update the gauges read from the database (at most every DATABASE_FIGURES_TTL seconds)
    and those of in-process sources."""
    global _figures_read_at, _refreshing
    CHILDREN.clear()
    if children_source is not None:
        for runtime, count in children_source().items():
            CHILDREN.labels(runtime).set(count)
    sources = list(stream_sources)
    STREAMS.set(sum(source.subscribers for source in sources))
    fresh = time.monotonic() - _figures_read_at < DATABASE_FIGURES_TTL
    if database is None or fresh or _refreshing:
        return  # a scrape meanwhile serves the figures there are
    _refreshing = True
    try:
        async with asyncio.timeout(DATABASE_FIGURES_TIMEOUT):
            await _read_database_figures(database)
    except (TimeoutError, FlowhostError) as exc:
        logger.warning("metrics: cannot read the database figures (%s)", exc)
    finally:
        _figures_read_at = time.monotonic()
        _refreshing = False


async def _read_database_figures(database: Database) -> None:
    async with database.connection(timeout=DATABASE_FIGURES_TIMEOUT) as conn:
        queue = await dashboard.queue_depth(conn)
        awaiting = await (await conn.execute(QUERIES["metrics_awaiting_runs"])).fetchone()
        dead = await (await conn.execute(QUERIES["metrics_dead_tuples"])).fetchall()
    QUEUE_JOBS.clear()
    for row in queue:
        QUEUE_JOBS.labels(row["entrypoint"], row["status"]).set(row["jobs"])
    AWAITING_RUNS.set(awaiting["runs"] if awaiting else 0)
    for row in dead:
        DEAD_TUPLES.labels(row["table"]).set(row["dead"])


def exposition() -> bytes:
    return generate_latest(REGISTRY)
