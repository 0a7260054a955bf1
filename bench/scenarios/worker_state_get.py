"""`ctx.state.get` from a child vs a raw ZeroMQ round trip, both timed inside a child process.

The step calls `await ctx.state.get("k")` many times and returns each call's time; the host
answers from memory (so the figure is the protocol, the SDK and the host's dispatch, not
Postgres). The anchor, in the same repetition, is a child process with a bare pyzmq DEALER
sending a msgpack request to a bare asyncio ROUTER in this process, which answers it: the
least any request/response over the same transport can cost.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

import msgpack
import zmq
import zmq.asyncio

from bench.harness import Context, Measurement
from bench.worker_support import MemoryBackend, fake_run_id, supervised

NAME = "worker_state_get"
DESCRIPTION = "ctx.state.get round trip from a Python child vs a raw zmq DEALER/ROUTER msgpack one"

STEP = """
import time
from flowhost_worker import step

@step(flow="state_get", entry=True)
async def timed_gets(calls, ctx):
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        await ctx.state.get("k")
        timings.append(time.perf_counter() - started)
    return timings
"""

RAW_CLIENT = """
import json, sys, time
import msgpack, zmq
socket = zmq.Context().socket(zmq.DEALER)
socket.connect(sys.argv[1])
timings = []
for i in range(int(sys.argv[2])):
    started = time.perf_counter()
    socket.send(msgpack.packb({"jsonrpc": "2.0", "id": i + 1, "method": "state.get",
                               "params": {"key": "k"}}))
    msgpack.unpackb(socket.recv())
    timings.append(time.perf_counter() - started)
print(json.dumps(timings))
"""


async def raw_round_trips(calls: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="fh-raw-") as directory:
        endpoint = f"ipc://{Path(directory) / 'raw.sock'}"
        context = zmq.asyncio.Context()
        router = context.socket(zmq.ROUTER)
        router.bind(endpoint)

        async def answer() -> None:
            while True:
                identity, frame = await router.recv_multipart()
                request = msgpack.unpackb(frame)
                reply = {
                    "jsonrpc": "2.0",
                    "id": request["id"],
                    "result": {"found": True, "value": 1},
                }
                await router.send_multipart([identity, msgpack.packb(reply)])

        server = asyncio.create_task(answer())
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RAW_CLIENT, endpoint, str(calls), stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await process.communicate()
        server.cancel()
        router.close(linger=0)
        context.term()
    timings: list[float] = json.loads(stdout)
    return timings


async def run(ctx: Context) -> list[Measurement]:
    calls = ctx.size(5_000, quick=500)
    async with supervised({"state_get.py": STEP}) as (supervisor, steps):
        step = steps["state_get/timed_gets"]
        backend = MemoryBackend()
        backend.state["k"] = 1
        ours = await supervisor.run(
            step, backend, run_id=fake_run_id(1), attempt=1, max_attempts=1, input=calls
        )
    raw = await raw_round_trips(calls)
    # The first calls warm both paths up; the median ignores them anyway.
    ours_us = statistics.median(ours) * 1e6
    raw_us = statistics.median(raw) * 1e6
    ctx.log(f"ctx.state.get p50 {ours_us:.0f} µs, raw zmq p50 {raw_us:.0f} µs")
    return [
        Measurement(
            "state_get_p50_us",
            ours_us,
            "µs",
            higher_is_better=False,
            anchor="raw_zmq_round_trip_p50_us",
            anchor_value=raw_us,
        )
    ]
