"""Group commit: batches form while a flush runs; results and errors reach each submitter."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from flowhost.engine.batching import GroupCommitter


async def test_items_submitted_during_a_flush_share_the_next_one() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if len(batches) == 1:
            await gate.wait()
        return [item * 10 for item in items]

    committer = GroupCommitter(flush, max_batch=3)
    first = asyncio.create_task(committer.submit(1))
    await asyncio.sleep(0)  # the first flush starts with item 1 alone
    rest = [asyncio.create_task(committer.submit(n)) for n in range(2, 7)]
    await asyncio.sleep(0)
    gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40, 50, 60]
    assert batches == [[1], [2, 3, 4], [5, 6]]


async def test_a_failed_flush_fails_its_batch_only() -> None:
    async def flush(items: Sequence[int]) -> list[int]:
        if 2 in items:
            raise RuntimeError("boom")
        return list(items)

    committer = GroupCommitter(flush, max_batch=1)
    results = await asyncio.gather(
        *(committer.submit(n) for n in (1, 2, 3)), return_exceptions=True
    )
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], RuntimeError)


async def test_an_idle_committer_flushes_at_once() -> None:
    async def flush(items: Sequence[str]) -> list[str]:
        return [item.upper() for item in items]

    committer = GroupCommitter(flush, max_batch=8)
    assert await committer.submit("a") == "A"
    assert await committer.submit("b") == "B"


async def test_a_flush_returning_the_wrong_count_is_a_bug_surfaced_to_callers() -> None:
    async def flush(items: Sequence[int]) -> list[int]:
        return []

    committer = GroupCommitter(flush, max_batch=4)
    with pytest.raises(ValueError):
        await committer.submit(1)


async def test_a_busy_committer_lingers_so_stragglers_join_one_batch() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        if items == [1, 2]:
            await gate.wait()
        return list(items)

    committer = GroupCommitter(flush, max_batch=100, linger=0.05)
    loop = asyncio.get_running_loop()
    # Idle: a lone item is flushed at once, no linger.
    started = loop.time()
    assert await committer.submit(0) == 0
    assert loop.time() - started < 0.04
    # Busy: [1, 2] is flushing when 3 arrives; after a flush of more than one item the
    # committer lingers, so 4, arriving 10 ms later, joins 3 (without the linger, 3 would be
    # flushed alone and 4 after it).
    first = [asyncio.create_task(committer.submit(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    third = asyncio.create_task(committer.submit(3))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.sleep(0.01)
    assert await committer.submit(4) == 4
    await asyncio.gather(*first, third)
    assert batches == [[0], [1, 2], [3, 4]]
