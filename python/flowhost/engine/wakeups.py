"""Sleeping until something happens: the loops that wake up for a due time or a notification
(the await sweeper, the scheduler) wait here."""

from __future__ import annotations

import asyncio


async def first_of(
    stop: asyncio.Event,
    wake: asyncio.Event,
    listener: asyncio.Task[None],
    timeout: float,
    *,
    name: str,
) -> None:
    """Wait until `stop` or `wake` is set, the listener ends, or `timeout` seconds pass.
    `name` names the waiting tasks (as `flowhost-<name>-stop` and `-wake`)."""
    waiters = [
        asyncio.create_task(stop.wait(), name=f"flowhost-{name}-stop"),
        asyncio.create_task(wake.wait(), name=f"flowhost-{name}-wake"),
    ]
    try:
        await asyncio.wait([*waiters, listener], timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
