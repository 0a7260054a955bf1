"""Group commit: work submitted while a flush runs goes into the next flush, together.

An idle host flushes each item at once (no added latency); a busy one amortises a transaction
over every item that arrived meanwhile, up to `max_batch`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

logger = logging.getLogger(__name__)


class GroupCommitter(Generic[Item, Result]):
    """`await submit(item)` returns `flush([..., item, ...])`'s result for that item.

    `flush` gets a batch and returns one result per item, in order; if it raises, every item of
    the batch gets the exception. One flush runs at a time.

    `linger` (seconds, default 0): after a flush of more than one item (the host is busy), wait
    this long before the next flush, so that items arriving just after it join one batch
    instead of one of them taking a flush of its own while the rest wait. After a flush of one
    item (an idle host) there is no wait, so idle latency is unchanged.
    """

    def __init__(
        self,
        flush: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_batch: int,
        linger: float = 0.0,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._linger = linger
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="flowhost-group-commit")
            self._runner.add_done_callback(_log_crash)
        return await future

    async def _run(self) -> None:
        busy = False
        while self._pending:
            if busy and self._linger > 0 and len(self._pending) < self._max_batch:
                await asyncio.sleep(self._linger)
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            busy = len(batch) > 1
            try:
                results = await self._flush([item for item, _ in batch])
                if len(results) != len(batch):
                    raise ValueError(
                        f"group commit flush returned {len(results)} results for {len(batch)} items"
                    )
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException as exc:  # cancelled: the waiters must not hang
                for _, future in batch + self._pending:
                    if not future.done():
                        future.set_exception(exc)
                self._pending.clear()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("group commit task failed", exc_info=task.exception())
