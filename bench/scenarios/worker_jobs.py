"""Isolated steps through the whole engine: one child process per job, Python and Node.

Runs of a one-step flow whose step does nothing are started untimed, then a host drains them;
every step runs in a fresh child (Python forked from the warm zygote, Node pre-started and
single-use). Anchors, in the same repetition:

- the same flow run in the host's own process (`isolation = "inprocess"`): what isolation costs;
- for Node, bare `node -e ""` processes started two at a time: a single-use Node child cannot
  be cheaper than Node's own start, so that rate is the ceiling of isolated Node jobs here.

The same flows with `reuse = 1000` and `concurrency = 4` (four children serve every job) show
what reuse buys.
"""

from __future__ import annotations

import asyncio
import time

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
export const config = {{ flow: {{ name: 'noop', step: 'noop', role: 'entry' }}{options} }}
export default defineFunction(async () => null)
"""
# Four children, each serving up to 1,000 jobs (without a cap every job in flight would start
# a child of its own, and few would be reused).
REUSE_PYTHON = ", reuse=1000, concurrency=4"
REUSE_NODE = ", reuse: 1000, concurrency: 4"


async def bare_spawns_per_s(argv: list[str], count: int, parallel: int = 2) -> float:
    async def one() -> None:
        process = await asyncio.create_subprocess_exec(*argv)
        await process.wait()

    started = time.perf_counter()
    for _ in range(count // parallel):
        await asyncio.gather(*(one() for _ in range(parallel)))
    return count // parallel * parallel / (time.perf_counter() - started)


async def run(ctx: Context) -> list[Measurement]:
    runs = {"python": ctx.size(3_000, quick=300), "node": ctx.size(600, quick=60)}
    flows = {
        "python": ("python", {"noop.py": PYTHON.format(options="")}),
        "node": ("node", {"noop.mjs": NODE.format(options="")}),
        "python_reuse": ("python", {"noop.py": PYTHON.format(options=REUSE_PYTHON)}),
        "node_reuse": ("python", {"noop.mjs": NODE.format(options=REUSE_NODE)}),
        "inprocess": ("python", {"noop.py": PYTHON.format(options=', isolation="inprocess"')}),
    }
    rates = {}
    for label, (size, files) in flows.items():
        async with ctx.fresh_database(label) as url:
            rates[label], _ = await drain_through_engine(url, files, "noop", runs[size], 1)
        ctx.log(f"{label}: {rates[label]:,.0f} jobs/s")
    node_ceiling = await bare_spawns_per_s(["node", "-e", ""], ctx.size(60, quick=20))
    ctx.log(f"bare node processes: {node_ceiling:,.0f}/s")

    def against_inprocess(label: str) -> Measurement:
        return Measurement(
            f"{label}_jobs_per_s",
            rates[label],
            "jobs/s",
            anchor="inprocess_jobs_per_s",
            anchor_value=rates["inprocess"],
        )

    return [
        against_inprocess("python"),
        Measurement(
            "node_jobs_per_s",
            rates["node"],
            "jobs/s",
            anchor="bare_node_processes_per_s",
            anchor_value=node_ceiling,
        ),
        against_inprocess("python_reuse"),
        against_inprocess("node_reuse"),
    ]
