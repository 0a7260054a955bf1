"""No-op in-process steps through the full flowhost engine, beside raw PgQueuer.

Runs of a four-step chain (`first → second → third → fourth`, each step emitting the event the
next one subscribes to) are started untimed; then a host drains them. Every step is one PgQueuer
job plus flowhost's work around it: claim, events (step.started, emit, step.completed), the run
index, readiness of the next step and its enqueue, all in Postgres. The anchor drains the same
number of bare PgQueuer jobs in its own fresh database, in the same repetition.
"""

from __future__ import annotations

from bench.anchors import pgqueuer_drain
from bench.engine_drain import drain_through_engine
from bench.harness import Context, Measurement

NAME = "engine_noop"
DESCRIPTION = "no-op in-process steps through the flowhost engine (4-step chains) vs raw PgQueuer"

STEPS = ("first", "second", "third", "fourth")


def chain_source(payload: str = "None") -> str:
    """The chain's functions; each emit carries `payload` (Python source of its value)."""
    lines = ["from flowhost_worker import step", ""]
    for index, name in enumerate(STEPS):
        emits = f"emits=['{name}.done']" if index < len(STEPS) - 1 else "emits=[]"
        role = "entry=True" if index == 0 else f"subscribes=['{STEPS[index - 1]}.done']"
        body = f"    await ctx.emit('{name}.done', {payload})\n" if index < len(STEPS) - 1 else ""
        lines += [
            f"@step(flow='chain', name='{name}', {role}, {emits}, isolation='inprocess')",
            f"async def {name}(data, ctx):",
            body + "    return None",
            "",
        ]
    return "\n".join(lines)


async def run(ctx: Context) -> list[Measurement]:
    steps = ctx.size(20_000, quick=2_000)
    async with ctx.fresh_database("engine") as url:
        engine, engine_steady = await drain_through_engine(
            url, {"chain.py": chain_source()}, "chain", steps // len(STEPS), len(STEPS)
        )
    async with ctx.fresh_database("pgqueuer") as url:
        anchor = await pgqueuer_drain(url, steps)
    return [
        Measurement(
            "steps_per_s",
            engine,
            "steps/s",
            anchor="pgqueuer_drain",
            anchor_value=anchor.jobs_per_s,
        ),
        Measurement(
            "steady_steps_per_s",
            engine_steady,
            "steps/s",
            anchor="pgqueuer_drain_steady",
            anchor_value=anchor.steady_jobs_per_s,
        ),
    ]
