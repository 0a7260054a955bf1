"""Stopping one attempt from outside it: the in-process interrupt, and its interplay with a
step's timeout and with the attempt's end."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from flowhost.engine.in_flight import InFlightAttempts
from flowhost.workers.cancellation import AttemptCanceled, Cancellation


async def test_a_cancel_interrupts_the_handler_and_becomes_attempt_canceled() -> None:
    cancellation = Cancellation()
    started = asyncio.Event()

    async def attempt() -> None:
        with cancellation:
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(attempt())
    await started.wait()
    cancellation.cancel("run 1 is canceled")
    with pytest.raises(AttemptCanceled, match="run 1 is canceled"):
        await task
    assert not task.cancelled()  # the task itself ends normally: it was not cancelled from above


async def test_a_timeout_stays_a_timeout_and_an_outer_cancel_stays_a_cancel() -> None:
    cancellation = Cancellation()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            with cancellation:
                await asyncio.sleep(30)
    assert cancellation.reason is None

    inner = Cancellation()
    started = asyncio.Event()

    async def attempt() -> None:
        with inner:
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(attempt())
    await started.wait()
    task.cancel()  # the host stopping, say
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_both_a_cancel_and_the_host_stopping_leave_the_task_cancelled() -> None:
    cancellation = Cancellation()
    started = asyncio.Event()

    async def attempt() -> None:
        with cancellation:
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(attempt())
    await started.wait()
    cancellation.cancel("run over")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancel_after_the_handler_returned_changes_nothing() -> None:
    cancellation = Cancellation()
    with cancellation:
        await asyncio.sleep(0)
    assert cancellation.close() is None
    cancellation.cancel("too late")
    assert cancellation.reason is None
    await asyncio.sleep(0)  # no CancelledError is pending on this task


async def test_a_cancel_before_the_handler_starts_stops_it_there() -> None:
    cancellation = Cancellation()
    cancellation.cancel("run over")
    with pytest.raises(AttemptCanceled), cancellation:
        raise AssertionError("the handler must not start")


async def test_attempts_are_tracked_while_they_run_and_closed_after() -> None:
    in_flight = InFlightAttempts()
    job = (uuid.uuid4(), "step", 1)
    with in_flight.track(job) as cancellation:
        assert len(in_flight) == 1
        in_flight.notified("not a run id")  # ignored, with a warning
    assert len(in_flight) == 0
    cancellation.cancel("after the end")
    assert cancellation.reason is None
