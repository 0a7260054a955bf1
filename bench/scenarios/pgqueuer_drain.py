"""Raw PgQueuer drain on its own: the anchor as a scenario, so its numbers are on record."""

from __future__ import annotations

from bench.anchors import pgqueuer_drain
from bench.harness import Context, Measurement

NAME = "pgqueuer_drain"
DESCRIPTION = "PgQueuer 1.6 defaults (psycopg driver, batch 10) draining N pre-enqueued no-op jobs"


async def run(ctx: Context) -> list[Measurement]:
    jobs = ctx.size(20_000, quick=2_000)
    async with ctx.fresh_database() as url:
        result = await pgqueuer_drain(url, jobs)
    return [
        Measurement("jobs_per_s", result.jobs_per_s, "jobs/s"),
        Measurement("steady_jobs_per_s", result.steady_jobs_per_s, "jobs/s"),
        Measurement("jobs_per_s_until_exit", result.jobs_per_s_until_exit, "jobs/s"),
    ]
