"""Isolated steps through the whole engine: one child process per job, Python and Node.

Runs of a one-step flow whose step does nothing are started untimed, then a host drains them;
every step runs in a fresh child (Python forked from the warm zygote, Node pre-started and
single-use). The anchor is the same flow run in the host's own process (`isolation =
"inprocess"`), in the same repetition: the ratio is what isolation costs.
"""

from __future__ import annotations

from bench.engine_drain import drain_through_engine
from bench.harness import Context, Measurement

NAME = "worker_jobs"
DESCRIPTION = "one child process per job through the engine (Python, Node) vs in-process steps"

PYTHON = """
from flowhost_worker import step

@step(flow="noop", entry=True{options})
async def noop(data, ctx):
    return None
"""
NODE = """
import {{ defineFunction }} from '@flowhost/worker'
export const config = {{ flow: {{ name: 'noop', step: 'noop', role: 'entry' }} }}
export default defineFunction(async () => null)
"""


async def run(ctx: Context) -> list[Measurement]:
    runs = ctx.size(3_000, quick=300)
    rates = {}
    for label, files in {
        "python": {"noop.py": PYTHON.format(options="")},
        "node": {"noop.mjs": NODE.format()},
        "inprocess": {"noop.py": PYTHON.format(options=', isolation="inprocess"')},
    }.items():
        async with ctx.fresh_database(label) as url:
            rates[label], _ = await drain_through_engine(url, files, "noop", runs, 1)
        ctx.log(f"{label}: {rates[label]:,.0f} jobs/s")
    return [
        Measurement(
            f"{runtime}_jobs_per_s",
            rates[runtime],
            "jobs/s",
            anchor="inprocess_jobs_per_s",
            anchor_value=rates["inprocess"],
        )
        for runtime in ("python", "node")
    ]
