"""Step throughput of the engine with 100,000 runs waiting on awaits, against none waiting.

Both sides drain the same no-op in-process 4-step chains through a host (as `engine_noop`),
each in a fresh database of its own. Before its drain, the loaded side gets 100,000 runs of
another flow parked on awaits, written the way the engine registers them (run `awaiting`, its
step `awaiting`, a `flowhost.awaits` row `waiting`, the run's `flow.started` and
`await.registered` events): half wait for an event (`payment.received`, matching the run's
order number, timing out in 30 days), half for a time 30 days away. They are inserted with one
`INSERT ... SELECT generate_series` statement, then vacuumed and analyzed, so that the drain
sees the steady state of a database holding them, not the aftermath of a bulk load.

Every emit of the chains carries `{"order": 2}`: besides its own name, the engine looks each
emitted event up among the waiting event awaits (by name, and by the payload's fields against
each await's `match`), and on the loaded side that field finds a parked await of another event.

The ratio is loaded / unloaded steps per second; the target is ≥ 0.9 (≤ 10 % slower). The
order of the two sides alternates between repetitions.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from bench.engine_drain import drain_through_engine
from bench.harness import Context, Measurement
from bench.scenarios.engine_noop import STEPS, chain_source
from flowhost.engine.definitions import AwaitDefinition
from flowhost.project import Project

NAME = "awaiting_load"
DESCRIPTION = "engine steps/s with 100k runs waiting on awaits vs none (no-op 4-step chains)"

PARKED_FLOW = "parked"
PARKED_STEP = "wait"
EVENT = "payment.received"
FAR = "30 days"

PARK = """
WITH parked AS (
    SELECT gen_random_uuid() AS id, n, n %% 2 = 0 AS on_event
    FROM generate_series(1, %(runs)s) AS n
), run_rows AS (
    INSERT INTO flowhost.runs (id, flow, status, input, definition_hash, step_count)
    SELECT id, %(flow)s, 'awaiting', jsonb_build_object('order', n), 'bench', 1 FROM parked
), step_rows AS (
    INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input)
    SELECT id, %(step)s, 'awaiting', 1, 1, jsonb_build_object('order', n) FROM parked
), await_rows AS (
    INSERT INTO flowhost.awaits (run_id, step, position, type, config, event_name, match,
                                 resolve_at, timeout_at)
    SELECT id, %(step)s, 'before',
           CASE WHEN on_event THEN 'event' ELSE 'time' END,
           CASE WHEN on_event THEN %(event_config)s::jsonb ELSE %(time_config)s::jsonb END,
           CASE WHEN on_event THEN %(event)s END,
           CASE WHEN on_event THEN jsonb_build_object('order', n) ELSE '{}'::jsonb END,
           CASE WHEN NOT on_event THEN clock_timestamp() + %(far)s::interval END,
           CASE WHEN on_event THEN clock_timestamp() + %(far)s::interval END
    FROM parked
    RETURNING run_id, type, event_name, resolve_at, timeout_at
), event_rows AS (
    INSERT INTO flowhost.events (run_id, type, step, data)
    SELECT id, 'flow.started', NULL,
           jsonb_build_object('flow', %(flow)s::text, 'input', jsonb_build_object('order', n),
                              'definition_hash', 'bench')
    FROM parked
    UNION ALL
    SELECT run_id, 'await.registered', %(step)s,
           jsonb_strip_nulls(jsonb_build_object('type', type, 'position', 'before',
                                                'registration', 1, 'event', event_name,
                                                'resolve_at', resolve_at,
                                                'timeout_at', timeout_at))
    FROM await_rows
), statistics AS (
    INSERT INTO flowhost.flow_stats AS f (flow, total, awaiting, last_run_at)
    VALUES (%(flow)s, %(runs)s, %(runs)s, now())
    ON CONFLICT (flow) DO UPDATE
        SET total = f.total + EXCLUDED.total, awaiting = f.awaiting + EXCLUDED.awaiting
)
SELECT count(*) AS parked FROM parked
"""
TABLES = ("runs", "steps", "awaits", "events", "flow_stats")


def park_runs(count: int, log: Callable[[str], None]) -> Callable[[Project], Awaitable[None]]:
    """`prepare` for drain_through_engine: park `count` runs on awaits, then vacuum."""

    async def prepare(project: Project) -> None:
        event = AwaitDefinition(type="event", event=EVENT, match={"order": "/order"})
        waited = AwaitDefinition(type="time", delay=30 * 86400.0)
        began = time.perf_counter()
        async with project.database.transaction() as conn:
            exists = await (
                await conn.execute("SELECT to_regclass('flowhost.awaits') IS NOT NULL AS found")
            ).fetchone()
            if not (exists and exists["found"]):
                raise RuntimeError("awaiting_load needs the awaits table (migration 0004)")
            await conn.execute(
                PARK,
                {
                    "runs": count,
                    "flow": PARKED_FLOW,
                    "step": PARKED_STEP,
                    "event": EVENT,
                    "far": FAR,
                    "event_config": Jsonb(event.to_config()),
                    "time_config": Jsonb(waited.to_config()),
                },
            )
        inserted = time.perf_counter() - began
        url = project.settings.database_url
        assert url is not None
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for table in TABLES:
                await conn.execute(
                    sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier("flowhost", table))
                )
        log(
            f"parked {count:,} runs on awaits in {inserted:.2f} s "
            f"(+ vacuum {time.perf_counter() - began - inserted:.2f} s)"
        )

    return prepare


async def run(ctx: Context) -> list[Measurement]:
    steps = ctx.size(8_000, quick=800)
    parked = ctx.size(100_000, quick=10_000)
    runs = steps // len(STEPS)
    files = {"chain.py": chain_source(payload="{'order': 2}")}
    rates: dict[str, tuple[float, float]] = {}
    sides = ["unloaded", "loaded"]
    if ctx.repetition % 2:
        sides.reverse()
    for side in sides:
        prepare = park_runs(parked, ctx.log) if side == "loaded" else None
        async with ctx.fresh_database(side) as url:
            rates[side] = await drain_through_engine(
                url, files, "chain", runs, len(STEPS), prepare=prepare
            )
        ctx.log(f"{side}: {rates[side][0]:,.0f} steps/s (steady {rates[side][1]:,.0f})")
    return [
        Measurement(
            "steps_per_s_awaiting_load",
            rates["loaded"][0],
            "steps/s",
            anchor="steps_per_s_no_awaits",
            anchor_value=rates["unloaded"][0],
        ),
        Measurement(
            "steady_steps_per_s_awaiting_load",
            rates["loaded"][1],
            "steps/s",
            anchor="steady_steps_per_s_no_awaits",
            anchor_value=rates["unloaded"][1],
        ),
    ]
