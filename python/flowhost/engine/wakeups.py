"""Sleeping until something happens: the loops that wake up for a due time or a notification
(the await sweeper, the scheduler) wait here."""

from __future__ import annotations

import asyncio


async def first_of(
    stop: asyncio.Event,
    wake: asyncio.Event,
    listener: asyncio.Task[None] | None,
    timeout: float,
    *,
    name: str,
) -> None:
    """Wait until `stop` or `wake` is set, the listener (if any) ends, or `timeout` seconds
    pass. `name` names the waiting tasks (as `flowhost-<name>-stop` and `-wake`)."""
    waiters = [
        asyncio.create_task(stop.wait(), name=f"flowhost-{name}-stop"),
        asyncio.create_task(wake.wait(), name=f"flowhost-{name}-wake"),
    ]
    try:
        watched = waiters if listener is None else [*waiters, listener]
        await asyncio.wait(watched, timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
