"""Dashboard pages with 1,000,000 runs stored, against the JSON API's run list in the same run.

A fresh database gets 1M runs of four flows, created over the last 30 days (90 % completed,
5 % failed, 2 % canceled, 2 % running, 1 % awaiting), by one `INSERT ... SELECT
generate_series`: the database's own triggers count them into flow_stats and run_activity as
they would have counted runs the engine made. SAMPLED runs also get steps and 40 events each
(what a run's page shows); the others have no events, which no page measured here reads. The
tables are then vacuumed and analyzed.

A `flowhost serve` subprocess serves the app on loopback; one client logged in with the
session cookie asks, in turns (so that drift on this shared machine hits every page alike):

- `/` (the overview: counts from flow_stats, runs over the last 24 h from run_activity, the
  latest failures, the queue, schedules, hosts, parked runs),
- `/runs` (the first page), `/runs?flow=orders&status=failed`, `/runs?cursor=...` (a page
  500,000 runs deep: keyset paging),
- `/runs/{id}` (a sampled run, with its timeline),
- and the anchor, `GET /api/runs?limit=50` with the bearer token: the API's run list.

Rows: p50 and p95 (ms) of each page against the anchor's p50 and p95. Target (issue 8): every
page ≤ 200 ms. The load average is logged beside them.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import httpx
import psycopg

from bench.engine_drain import temporary_project, vacuum_analyze
from bench.harness import Context, Measurement, percentile
from bench.scenarios.webhook_ingest import flowhost_serve
from flowhost.api.paging import encode_cursor

NAME = "dashboard_pages"
DESCRIPTION = (
    "dashboard pages (overview, run list, deep page, run page) with 1M runs vs API run list"
)

TOKEN = "bench-dashboard-token-0123456789"
SAMPLED = 20
EVENTS_PER_RUN = 40
FLOWS = {
    "bench.py": """
from flowhost_worker import step

@step(flow="orders", entry=True, isolation="inprocess")
async def first(data, ctx):
    return None
"""
}
LOAD_RUNS = """
INSERT INTO flowhost.runs (id, flow, status, input, result, error, definition_hash, step_count,
                           completed_steps, created_at, finished_at)
SELECT gen_random_uuid(), m.flow, m.status, jsonb_build_object('order', m.n),
       CASE WHEN m.status = 'completed' THEN '{"ok": true}'::jsonb END,
       CASE WHEN m.status = 'failed'
            THEN jsonb_build_object('type', 'ValueError', 'message', 'bench failure ' || m.n) END,
       'bench', 3, CASE WHEN m.status = 'completed' THEN 3 ELSE 1 END, m.created_at,
       CASE WHEN m.status IN ('completed', 'failed', 'canceled')
            THEN m.created_at + interval '2 seconds' END
FROM (
    SELECT n, (ARRAY['orders', 'billing', 'reports', 'emails'])[1 + n %% 4] AS flow,
           CASE WHEN n %% 100 < 90 THEN 'completed' WHEN n %% 100 < 95 THEN 'failed'
                WHEN n %% 100 < 97 THEN 'canceled' WHEN n %% 100 < 99 THEN 'running'
                ELSE 'awaiting' END AS status,
           clock_timestamp() - n * (interval '30 days' / %(runs)s) AS created_at
    FROM generate_series(1, %(runs)s) AS n
) AS m
"""
LOAD_SAMPLED = """
WITH sampled AS (
    SELECT id, created_at FROM flowhost.runs
    WHERE flow = 'orders' AND status = 'completed'
    ORDER BY created_at DESC LIMIT %(sampled)s
), step_rows AS (
    INSERT INTO flowhost.steps (run_id, name, status, attempt, max_attempts, input, result,
                                queued_at, started_at, finished_at)
    SELECT s.id, 'step' || k, 'completed', 1, 1, '{}'::jsonb, jsonb_build_object('k', k),
           s.created_at, s.created_at, s.created_at + interval '1 second'
    FROM sampled AS s, generate_series(1, 3) AS k
)
INSERT INTO flowhost.events (run_id, type, step, attempt, ts, data)
SELECT s.id,
       CASE WHEN e = 1 THEN 'flow.started' WHEN e = %(events)s THEN 'flow.completed'
            WHEN e %% 4 = 0 THEN 'state.set' ELSE 'log' END,
       CASE WHEN e IN (1, %(events)s) THEN NULL ELSE 'step' || (1 + e %% 3) END,
       CASE WHEN e IN (1, %(events)s) THEN NULL ELSE 1 END,
       s.created_at + e * interval '10 milliseconds',
       CASE WHEN e %% 4 = 0 THEN jsonb_build_object('key', 'k' || e, 'value', e)
            WHEN e IN (1, %(events)s) THEN '{}'::jsonb
            ELSE jsonb_build_object('level', 'info', 'message', 'line ' || e,
                                    'fields', jsonb_build_object('n', e)) END
FROM sampled AS s, generate_series(1, %(events)s) AS e
ORDER BY s.id, e
"""
DEEP = "SELECT created_at, id FROM flowhost.runs ORDER BY created_at DESC, id OFFSET %(at)s LIMIT 1"
RUN = "SELECT run_id FROM flowhost.events WHERE type = 'flow.completed' LIMIT 1"


async def load(url: str, runs: int, ctx: Context) -> tuple[str, str]:
    """Store the runs; returns a cursor half-way down the list and a sampled run's id."""
    began = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(LOAD_RUNS, {"runs": runs})
        await conn.execute(LOAD_SAMPLED, {"sampled": SAMPLED, "events": EVENTS_PER_RUN})
    await vacuum_analyze(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        deep = await (await conn.execute(DEEP, {"at": runs // 2})).fetchone()
        sampled = await (await conn.execute(RUN)).fetchone()
    assert deep is not None and sampled is not None
    ctx.log(f"stored {runs} runs in {time.perf_counter() - began:.1f}s")
    return encode_cursor((deep[0], deep[1])), str(sampled[0])


async def timed(client: httpx.AsyncClient, path: str, expect: str) -> float:
    started = time.perf_counter()
    response = await client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or expect not in response.text:
        raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
    return elapsed


async def measure(
    base: str, pages: dict[str, tuple[str, str]], rounds: int, ctx: Context
) -> dict[str, list[float]]:
    """Milliseconds per request of each page and of the API's run list ("api"), asked in
    turns, after 3 rounds of warm-up."""
    times: dict[str, list[float]] = {name: [] for name in [*pages, "api"]}
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as browser,
        httpx.AsyncClient(base_url=base, timeout=30, headers=bearer) as api,
    ):
        login = await browser.get(f"/?token={TOKEN}")
        if login.status_code != 303:
            raise RuntimeError(f"login failed: {login.status_code}")
        ctx.log(f"load before: {os.getloadavg()[0]:.2f} (1 min avg, {os.cpu_count()} cores)")
        for round_ in range(rounds + 3):
            for name, (path, expect) in pages.items():
                elapsed = await timed(browser, path, expect)
                if round_ >= 3:
                    times[name].append(elapsed)
            elapsed = await timed(api, "/api/runs?limit=50", '"next_cursor"')
            if round_ >= 3:
                times["api"].append(elapsed)
        ctx.log(f"load after: {os.getloadavg()[0]:.2f}")
    return times


async def run(ctx: Context) -> list[Measurement]:
    runs = ctx.size(1_000_000, quick=50_000)
    rounds = ctx.size(40, quick=10)
    async with (
        ctx.fresh_database("dashboard") as url,
        temporary_project(url, FLOWS) as project,
    ):
        cursor, run_id = await load(url, runs, ctx)
        project_dir: Path = project.settings.project_dir
        pages = {
            "overview": ("/", "Runs over time"),
            "runs_page": ("/runs", "Next page"),
            "runs_filtered": ("/runs?flow=orders&status=failed", 'data-status="failed"'),
            "runs_deep_page": (f"/runs?cursor={cursor}", "Next page"),
            "run_page": (f"/runs/{run_id}", "flow.completed"),
        }
        async with flowhost_serve(project_dir, url, FLOWHOST_API_TOKEN=TOKEN) as (base, _):
            times = await measure(base, pages, rounds, ctx)
    anchor = times.pop("api")
    anchor_p50, anchor_p95 = statistics.median(anchor), percentile(anchor, 0.95)
    found = []
    for name, values in times.items():
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        ctx.log(
            f"{name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
            f"(api run list {anchor_p50:.1f} / {anchor_p95:.1f})"
        )
        found += [
            Measurement(f"{name}_p50_ms", p50, "ms", False, "api_run_list_p50", anchor_p50),
            Measurement(f"{name}_p95_ms", p95, "ms", False, "api_run_list_p95", anchor_p95),
        ]
    return found
