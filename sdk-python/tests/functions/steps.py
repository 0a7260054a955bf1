"""Step handlers the child-runtime tests run in real child processes."""

import asyncio
import os
import signal
import sys
import time

from flowhost_worker import RetryRequested
from flowhost_worker.rpc_backend import MAX_QUEUED_NOTIFICATIONS

LEAKED: list[str] = []
TASKS: set[asyncio.Task[None]] = set()
not_callable = 3


async def echo(input, ctx):
    return {"input": input, "key": ctx.idempotency_key, "attempt": ctx.attempt}


async def started_at(input, ctx):
    return time.monotonic()


async def state_round_trip(input, ctx):
    await ctx.state.set("order", {"id": 7})
    await ctx.state.set("total", 12.5)
    got = await ctx.state.get("order")
    missing = await ctx.state.get("nope", "fallback")
    keys = await ctx.state.list()
    await ctx.state.delete("total")
    return {"got": got, "missing": missing, "keys": keys, "after": await ctx.state.list()}


async def chatty(input, ctx):
    ctx.logger.info("first", n=1)
    ctx.progress(0.5, "half way")
    ctx.heartbeat()
    ctx.logger.warning("odd field", thing=object())
    await ctx.emit("order.done", {"id": 7})
    ctx.logger.error("last")
    return "said it all"


async def flows(input, ctx):
    return [
        await ctx.flow.start("billing", {"id": 7}, idempotency_key="bill-7"),
        await ctx.flow.start("audit"),
        await ctx.flow.cancel(),
        await ctx.flow.cancel("run-9"),
        await ctx.flow.is_running(),
        await ctx.flow.is_running("billing", exclude_run_ids=["run-3"]),
        await ctx.flow.is_running(run_id="run-4"),
    ]


async def fails(input, ctx):
    raise ValueError("the order has no lines")


async def retries(input, ctx):
    raise RetryRequested(2.5, "rate limited")


async def out_of_memory(input, ctx):
    raise MemoryError()


async def exits(input, ctx):
    sys.exit(3)


async def sleeps(input, ctx):
    await asyncio.sleep(input)
    return "woke up"


async def environment(input, ctx):
    return dict(os.environ)


async def unsendable(input, ctx):
    return {"ids": {1, 2}}


async def leaks(input, ctx):
    async def later():
        await asyncio.sleep(0.05)
        try:
            await ctx.state.get("x")
        except Exception as exc:
            LEAKED.append(f"{type(exc).__name__}: {exc}")
        try:
            ctx.logger.info("too late")
        except Exception as exc:
            LEAKED.append(f"{type(exc).__name__}: {exc}")

    task = asyncio.get_running_loop().create_task(later())
    TASKS.add(task)
    return "left a task behind"


async def leaked(input, ctx):
    await asyncio.gather(*TASKS)
    return LEAKED


async def preloaded(input, ctx):
    return sorted(name for name in sys.modules if name.startswith("warm_"))


async def segfaults(input, ctx):
    os.kill(os.getpid(), signal.SIGSEGV)


async def floods(input, ctx):
    for n in range(input):
        ctx.logger.info("line", n=n)
    return input


async def after_await(input, ctx):
    awaited = ctx.awaited
    return None if awaited is None else {"type": awaited.type, "data": awaited.data}


async def mail_hook(data, ctx):
    await ctx.state.set("mailed", data["url"])
    try:
        await ctx.emit("order.charged", {})
    except Exception as exc:
        return {"hook": ctx.hook, "key": ctx.idempotency_key, "refused": str(exc)}
    return {"hook": ctx.hook, "refused": None}


async def prints(input, ctx):
    # Three ways a step writes to its stdout, each buffered differently: Python's stream (block
    # buffered on a pipe), the descriptor itself, and C's stdio (an extension's printf).
    print("from print")
    os.write(1, b"from os.write\n")
    import ctypes

    ctypes.CDLL(None).printf(b"from printf\n")
    print("to stderr", file=sys.stderr)
    return input


async def emits_many(input, ctx):
    # These logs fill the notification queue (the last one is dropped), so the emits find it
    # full: they wait for room, and are never dropped.
    for n in range(MAX_QUEUED_NOTIFICATIONS + 1):
        ctx.logger.info("filler", n=n)
    for n in range(input):
        await ctx.emit("order.tick", n)
    await ctx.emit("order.done", {"count": input})
    return input


async def emits_refused(input, ctx):
    refused = []
    for name, payload in [
        ("order.unknown", None),
        ("order.done", {"blob": "x" * (9 * 1024 * 1024)}),
        ("order.done", {"bad": "\ud800"}),
    ]:
        try:
            await ctx.emit(name, payload)
        except ValueError as exc:
            refused.append(str(exc)[:120])
    return refused
