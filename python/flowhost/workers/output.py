"""A child's stdout and stderr, read line by line into the running attempt's log events.

Both pipes are drained all the time, whatever the child writes: a child that prints megabytes
never blocks on a full pipe, and what the host keeps of it is bounded per attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHUNK = 64 * 1024
# A longer line is cut (and marked); per attempt, output beyond the budget is counted, not kept.
MAX_LINE = 8 * 1024
OUTPUT_BUDGET = 1024 * 1024

LineSink = Callable[[str, str], None]  # (stream name, line)


class OutputReader:
    """Reads one pipe of a child and hands each line to `sink(stream, line)`."""

    def __init__(self, stream: str, reader: asyncio.StreamReader, sink: LineSink) -> None:
        self.stream = stream
        self._reader = reader
        self._sink = sink
        self.task = asyncio.create_task(self._run(), name=f"flowhost-output {stream}")

    async def _run(self) -> None:
        pending = b""
        while True:
            chunk = await self._reader.read(CHUNK)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._emit(line)
            while len(pending) > MAX_LINE:
                self._emit(pending[:MAX_LINE])
                pending = pending[MAX_LINE:]
        if pending:
            self._emit(pending)

    def _emit(self, raw: bytes) -> None:
        text = raw[:MAX_LINE].decode(errors="replace").rstrip("\r")
        if len(raw) > MAX_LINE:
            text += " [line cut]"
        self._sink(self.stream, text)


class OutputBudget:
    """How much of one attempt's output is kept: lines up to `limit` bytes, then a count."""

    def __init__(self, limit: int = OUTPUT_BUDGET) -> None:
        self.limit = limit
        self.kept = 0
        self.dropped = 0

    def admit(self, line: str) -> bool:
        size = len(line) + 1
        if self.kept + size > self.limit:
            self.dropped += size
            return False
        self.kept += size
        return True


async def pipe_reader(fd: int) -> asyncio.StreamReader:
    """An asyncio reader over the read end `fd` of a pipe (which it takes over)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK * 2)
    # The transport owns the file from here and closes it at EOF.
    pipe = open(fd, "rb", buffering=0)  # noqa: SIM115
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader
