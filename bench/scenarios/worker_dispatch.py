"""Dispatch overhead: from the host handing a job to the supervisor to the handler running.

The handler returns the wall-clock time at which it started; the host subtracts the time at
which it asked for the job to run. Jobs run one after another, with a pause between them long
enough for the warm pool to replace the child the last job used (a host with spare capacity):
a Python fork is ready in a few milliseconds, a Node process in about a tenth of a second.
The anchor, in the same repetition, is a cold start of the same runtime: the time from asking
for `python -c` / `node -e` to its first statement running.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from bench.harness import Context, Measurement, percentile
from bench.worker_support import MemoryBackend, fake_run_id, supervised

NAME = "worker_dispatch"
DESCRIPTION = "job handed to a child → handler running, p50/p99, vs a cold python -c / node -e"

PYTHON = """
import time
from flowhost_worker import step

@step(flow="dispatch_py", entry=True)
async def started_at(data, ctx):
    return time.time()
"""
NODE = """
import { defineFunction } from '@flowhost/worker'
export const config = { flow: { name: 'dispatch_js', step: 'started_at', role: 'entry' } }
export default defineFunction(async () => (performance.timeOrigin + performance.now()) / 1000)
"""
COLD = {
    "python": [sys.executable, "-c", "import time; print(time.time())"],
    "node": ["node", "-e", "console.log((performance.timeOrigin + performance.now()) / 1000)"],
}
PAUSE = {"python": 0.02, "node": 0.15}


async def cold_start(argv: list[str]) -> float:
    asked = time.time()
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    stdout, _ = await process.communicate()
    return float(stdout) - asked


async def run(ctx: Context) -> list[Measurement]:
    jobs = {"python": ctx.size(400, quick=60), "node": ctx.size(150, quick=30)}
    measurements = []
    async with supervised(
        {"dispatch_py.py": PYTHON, "dispatch_js.mjs": NODE}, warm_python=2, warm_node=2
    ) as (supervisor, steps):
        await asyncio.sleep(1.0)  # let the pools fill
        for runtime, key in (
            ("python", "dispatch_py/started_at"),
            ("node", "dispatch_js/started_at"),
        ):
            step = steps[key]
            dispatch = []
            for job in range(jobs[runtime]):
                await asyncio.sleep(PAUSE[runtime])
                asked = time.time()
                started = await supervisor.run(
                    step,
                    MemoryBackend(),
                    run_id=fake_run_id(job),
                    attempt=1,
                    max_attempts=1,
                    input=None,
                )
                dispatch.append((started - asked) * 1000)
            cold = [
                await cold_start(COLD[runtime]) * 1000 for _ in range(max(10, jobs[runtime] // 10))
            ]
            ctx.log(
                f"{runtime}: p50 {statistics.median(dispatch):.2f} ms, "
                f"p99 {percentile(dispatch, 0.99):.2f} ms; "
                f"cold p50 {statistics.median(cold):.1f} ms"
            )
            for name, fraction in (("p50", 0.5), ("p99", 0.99)):
                measurements.append(
                    Measurement(
                        f"{runtime}_dispatch_{name}_ms",
                        percentile(dispatch, fraction),
                        "ms",
                        higher_is_better=False,
                        anchor=f"cold_{runtime}_{name}_ms",
                        anchor_value=percentile(cold, fraction),
                    )
                )
    return measurements
