"""Step throughput of the engine with 100,000 runs waiting on awaits.

Each side drains the same no-op in-process 4-step chains through a host (as `engine_noop`), in
a fresh database of its own, which first gets, according to the side:

- `awaiting`: 100,000 runs of another flow parked on awaits, written the way the engine
  registers them (run `awaiting`, its step `awaiting`, a `flowhost.awaits` row `waiting`, the
  run's `flow.started` and `await.registered` events); half wait for an event
  (`payment.received`, matching the run's order number, timing out in 30 days), half for a time
  30 days away;
- `finished` (the anchor): as many runs of that flow, completed long ago (run, step and events
  `flow.started` and `flow.completed`; no awaits). The two differ only in what waiting costs;
  both tables are as big;
- `empty`: nothing (a second anchor: a new database).

The rows are inserted with one `INSERT ... SELECT generate_series` statement. On every side,
once the chains are started, the tables are vacuumed and analyzed before the drain: it sees the
steady state of a database holding what it holds, not the aftermath of a bulk load, and the
planner works from statistics of it. (Against `empty` the ratio mixes in the plans Postgres
picks for small tables, which need not be the faster ones.)

Every emit of the chains carries `{"order": 2}`: besides its own name, the engine looks each
emitted event up among the waiting event awaits (by name, and by the payload's fields against
each await's `match`), and on the `awaiting` side that field finds a parked await of another
event.

The rows are `awaiting` steps/s against `finished` (the target: a ratio ≥ 0.9, ≤ 10 % slower)
and against `empty`. The order of the sides rotates between repetitions.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from psycopg.types.json import Jsonb

from bench.engine_drain import drain_through_engine
from bench.harness import Context, Measurement
from bench.scenarios.engine_noop import STEPS, chain_source
from flowhost.engine.definitions import AwaitDefinition
from flowhost.project import Project

NAME = "awaiting_load"
DESCRIPTION = "engine steps/s with 100k runs waiting on awaits vs 100k finished runs vs none"

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
FINISH = """
WITH finished AS (
    SELECT gen_random_uuid() AS id, n,
           clock_timestamp() - %(far)s::interval AS started_at
    FROM generate_series(1, %(runs)s) AS n
), run_rows AS (
    INSERT INTO flowhost.runs (id, flow, status, input, result, definition_hash, step_count,
                               completed_steps, created_at, finished_at)
    SELECT id, %(flow)s, 'completed', jsonb_build_object('order', n), 'null'::jsonb, 'bench', 1,
           1, started_at, started_at + interval '1 second'
    FROM finished
), step_rows AS (
    INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input, result,
                                queued_at, started_at, finished_at)
    SELECT id, %(step)s, 'completed', 1, 1, jsonb_build_object('order', n), 'null'::jsonb,
           started_at, started_at, started_at + interval '1 second'
    FROM finished
), event_rows AS (
    INSERT INTO flowhost.events (run_id, type, step, data)
    SELECT id, 'flow.started', NULL,
           jsonb_build_object('flow', %(flow)s::text, 'input', jsonb_build_object('order', n),
                              'definition_hash', 'bench')
    FROM finished
    UNION ALL
    SELECT id, 'flow.completed', NULL, jsonb_build_object('result', NULL) FROM finished
), statistics AS (
    INSERT INTO flowhost.flow_stats AS f (flow, total, completed, last_run_at)
    VALUES (%(flow)s, %(runs)s, %(runs)s, now())
    ON CONFLICT (flow) DO UPDATE
        SET total = f.total + EXCLUDED.total, completed = f.completed + EXCLUDED.completed
)
SELECT count(*) AS finished FROM finished
"""
SIDES = ("awaiting", "finished", "empty")


def load(side: str, count: int, log: Callable[[str], None]) -> Callable[[Project], Awaitable[None]]:
    """`prepare` for drain_through_engine: park `count` runs on awaits (`awaiting`), or insert
    as many finished runs (`finished`)."""

    async def prepare(project: Project) -> None:
        event = AwaitDefinition(type="event", event=EVENT, match={"order": "/order"})
        waited = AwaitDefinition(type="time", delay=30 * 86400.0)
        began = time.perf_counter()
        async with project.database.transaction() as conn:
            exists = await (
                await conn.execute("SELECT to_regclass('flowhost.awaits') IS NOT NULL AS found")
            ).fetchone()
            if not (exists and exists["found"]):
                raise RuntimeError("awaiting_load needs the awaits table (migration 0006)")
            params = {"runs": count, "flow": PARKED_FLOW, "step": PARKED_STEP, "far": FAR}
            if side == "awaiting":
                params |= {
                    "event": EVENT,
                    "event_config": Jsonb(event.to_config()),
                    "time_config": Jsonb(waited.to_config()),
                }
            await conn.execute(PARK if side == "awaiting" else FINISH, params)
        log(f"{side}: {count:,} runs inserted in {time.perf_counter() - began:.2f} s")

    return prepare


async def run(ctx: Context) -> list[Measurement]:
    steps = ctx.size(20_000, quick=800)
    loaded = ctx.size(100_000, quick=10_000)
    runs = steps // len(STEPS)
    files = {"chain.py": chain_source(payload="{'order': 2}")}
    rates: dict[str, tuple[float, float]] = {}
    shift = ctx.repetition % len(SIDES)
    for side in SIDES[shift:] + SIDES[:shift]:
        prepare = load(side, loaded, ctx.log) if side != "empty" else None
        async with ctx.fresh_database(side) as url:
            rates[side] = await drain_through_engine(
                url, files, "chain", runs, len(STEPS), prepare=prepare, analyze=True
            )
        ctx.log(f"{side}: {rates[side][0]:,.0f} steps/s (steady {rates[side][1]:,.0f})")
    ctx.log(
        "this repetition: awaiting / finished "
        f"{rates['awaiting'][0] / rates['finished'][0]:.2f}, "
        f"awaiting / empty {rates['awaiting'][0] / rates['empty'][0]:.2f}"
    )
    return [
        Measurement(
            f"{steady}steps_per_s_awaiting_vs_{anchor}",
            rates["awaiting"][index],
            "steps/s",
            anchor=f"{steady}steps_per_s_{anchor}",
            anchor_value=rates[anchor][index],
        )
        for anchor in ("finished", "empty")
        for index, steady in ((0, ""), (1, "steady_"))
    ]
