"""A child's stdout and stderr, read line by line into the running attempt's log events.

Both pipes are drained all the time, whatever the child writes: a child that prints megabytes
never blocks on a full pipe, and what the host keeps of it is bounded per attempt.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Protocol

CHUNK = 64 * 1024
# A longer line is cut (and marked); per attempt, output beyond the budget is counted, not kept.
MAX_LINE = 8 * 1024
OUTPUT_BUDGET = 1024 * 1024

LineSink = Callable[[str, str], None]  # (stream name, line)


class ChunkSource(Protocol):
    """What output is read from: an asyncio StreamReader, or a PipeReader."""

    async def read(self, n: int = ..., /) -> bytes: ...


class OutputReader:
    """Reads one pipe of a child and hands each line to `sink(stream, line)`."""

    def __init__(self, stream: str, reader: ChunkSource, sink: LineSink) -> None:
        self.stream = stream
        self._reader = reader
        self._sink = sink
        self.task = asyncio.create_task(self._run(), name=f"flowhost-output {stream}")

    async def _run(self) -> None:
        pending = b""
        cutting = False  # inside a line already cut: the rest of it, up to its newline, goes
        while True:
            chunk = await self._reader.read(CHUNK)
            if not chunk:
                break
            *lines, rest = (pending + chunk).split(b"\n")
            for line in lines:
                if not cutting:
                    self._emit(line)
                cutting = False
            pending = b"" if cutting else rest
            if len(pending) > MAX_LINE:
                self._emit(pending)
                pending, cutting = b"", True
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


class PipeReader:
    """The read end of a pipe, read through the loop's `add_reader`.

    Not `loop.connect_read_pipe`: under uvloop its transport closes the descriptor itself while
    the file object handed to it closes it again, and the second close can hit a descriptor
    ZeroMQ has opened since (libzmq then aborts the host). Here the fd is closed once, at EOF.
    """

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
        self._chunks.put_nowait(data)

    async def read(self, _size: int = CHUNK) -> bytes:
        """The next chunk; b"" once the writer closed its end."""
        chunk = await self._chunks.get()
        if not chunk:
            self._chunks.put_nowait(chunk)  # EOF stays EOF
        return chunk
