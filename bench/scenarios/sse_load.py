"""Engine step throughput with 500 open SSE streams against none, in the same repetition.

Each side drains the same no-op in-process 4-step chains (as `engine_noop`) through a host
whose process also serves the HTTP app (as `flowhost host --http` does): the streams' work
shares the engine's process and event loop. On the `streams` side, before the host starts,
500 streams are opened by a client process of their own (bench/sse_clients.py, raw sockets)
and the drain starts once every one is subscribed:

- 480 streams of single runs (`/api/runs/{id}/stream`): one each on the last 480 runs
  started, which run last, so that their streams stay open for the whole drain and each
  sends all of its run's events;
- 10 streams of every run's status changes (`/api/stream`), which send 2 frames per run;
- 10 of them filtered on failures (`/api/stream?status=failed`), which send none here but make
  the fan-out read the status changes of every run.

The `none` side has the same HTTP server, idle. The row is `streams` steps/s against `none`
(target: a ratio >= 0.9, at most 10 % slower). The order of the sides alternates between
repetitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator

from bench.engine_drain import Beside, drain_through_engine
from bench.harness import Context, Measurement
from bench.scenarios.engine_noop import STEPS, chain_source
from flowhost.api.app import create_app
from flowhost.api.server import HttpServer
from flowhost.project import Project

NAME = "sse_load"
DESCRIPTION = "engine steps/s with 500 open SSE streams (480 runs, 20 global) vs none"

TOKEN = "bench-admin-token-0123456789"
RUN_STREAMS = 480
CHANGE_STREAMS = 10
FAILURE_STREAMS = 10
SIDES = ("streams", "none")


def beside(ctx: Context, streams: bool, report: dict[str, str]) -> Beside:
    """The HTTP app beside the host; with `streams`, the 500 streams open on it."""

    @contextlib.asynccontextmanager
    async def serve(project: Project, run_ids: list[uuid.UUID]) -> AsyncIterator[None]:
        app = create_app(project)
        server = HttpServer("127.0.0.1", 0)
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(app, stop))
        clients = None
        try:
            if streams:
                watched = run_ids[-RUN_STREAMS:]
                paths = (
                    [f"/api/runs/{run_id}/stream" for run_id in watched]
                    + ["/api/stream"] * CHANGE_STREAMS
                    + ["/api/stream?status=failed"] * FAILURE_STREAMS
                )
                clients = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.sse_clients",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
                assert clients.stdin is not None and clients.stdout is not None
                config = {"host": "127.0.0.1", "port": server.port, "token": TOKEN}
                clients.stdin.write((json.dumps({**config, "paths": paths}) + "\n").encode())
                await clients.stdin.drain()
                line = await asyncio.wait_for(clients.stdout.readline(), 120)
                ctx.log(f"streams: {line.decode().strip()}")
            yield
        finally:
            if clients is not None:
                clients.terminate()
                out, _ = await clients.communicate()
                report["clients"] = out.decode().strip()
            stop.set()
            await serving

    return serve


async def run(ctx: Context) -> list[Measurement]:
    steps = ctx.size(20_000, quick=2_000)
    runs = steps // len(STEPS)
    files = {"chain.py": chain_source()}
    rates: dict[str, tuple[float, float]] = {}
    shift = ctx.repetition % len(SIDES)
    for side in SIDES[shift:] + SIDES[:shift]:
        report: dict[str, str] = {}
        async with ctx.fresh_database(side) as url:
            rates[side] = await drain_through_engine(
                url,
                files,
                "chain",
                runs,
                len(STEPS),
                beside=beside(ctx, side == "streams", report),
                api_token=TOKEN,
            )
        ctx.log(
            f"{side}: {rates[side][0]:,.0f} steps/s (steady {rates[side][1]:,.0f})"
            + (f"; clients: {report['clients']}" if report.get("clients") else "")
        )
    ctx.log(f"this repetition: streams / none {rates['streams'][0] / rates['none'][0]:.2f}")
    return [
        Measurement(
            f"{steady}steps_per_s_with_500_streams",
            rates["streams"][index],
            "steps/s",
            anchor=f"{steady}steps_per_s_without_streams",
            anchor_value=rates["none"][index],
        )
        for index, steady in ((0, ""), (1, "steady_"))
    ]
