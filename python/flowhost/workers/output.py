"""A child's stdout and stderr, read line by line into the running attempt's log events.

Both pipes are drained all the time, whatever the child writes: a child that prints megabytes
never blocks on a full pipe, and what the host keeps of it is bounded per attempt.

A child flushes its output before it answers `execute` (docs/protocol.md), so when the answer
arrives everything the attempt wrote is already in the pipes: `settle()` reads them up to that
point, and the attempt's output is complete without waiting for the child to exit.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
import termios
from collections.abc import Callable
from typing import Protocol

CHUNK = 64 * 1024
# A longer line is cut (and marked); per attempt, output beyond the budget is counted, not kept.
MAX_LINE = 8 * 1024
OUTPUT_BUDGET = 1024 * 1024

LineSink = Callable[[str, str], None]  # (stream name, line)


class ChunkSource(Protocol):
    """What output is read from (a PipeReader): chunks in order, b"" at the end, and markers
    put between them."""

    async def read(self) -> bytes | asyncio.Future[None]: ...

    def mark(self) -> asyncio.Future[None] | None:
        """Queue what the pipe holds now, then a marker for the reader to resolve when it gets
        there; None when the pipe holds nothing and nothing is queued."""
        ...


class OutputReader:
    """Reads one pipe of a child and hands each line to `sink(stream, line)`."""

    def __init__(self, stream: str, reader: ChunkSource, sink: LineSink) -> None:
        self.stream = stream
        self._reader = reader
        self._sink = sink
        self._pending = b""  # the start of a line whose newline has not come yet
        self._cutting = False  # inside a line already cut: the rest of it, up to its newline, goes
        self.task = asyncio.create_task(self._run(), name=f"flowhost-output {stream}")

    async def settle(self) -> None:
        """Hand every line the pipe holds now to the sink; a last line without its newline is
        handed as it is (the writer said it had written everything: nothing of it is left)."""
        marker = self._reader.mark()
        if marker is None:
            # Nothing to read: the reader is waiting for more, with nothing in hand but a part
            # of a line, if that.
            self._end_line()
        elif not self.task.done():
            await asyncio.wait({marker, self.task}, return_when=asyncio.FIRST_COMPLETED)

    async def _run(self) -> None:
        while True:
            chunk = await self._reader.read()
            if isinstance(chunk, asyncio.Future):
                self._end_line()
                if not chunk.done():
                    chunk.set_result(None)
                continue
            if not chunk:
                break
            *lines, rest = (self._pending + chunk).split(b"\n")
            for line in lines:
                if not self._cutting:
                    self._emit(line)
                self._cutting = False
            self._pending = b"" if self._cutting else rest
            if len(self._pending) > MAX_LINE:
                self._emit(self._pending)
                self._pending, self._cutting = b"", True
        self._end_line()

    def _end_line(self) -> None:
        if self._pending:
            self._emit(self._pending)
        self._pending, self._cutting = b"", False

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
        self._fd: int | None = fd
        self._chunks: asyncio.Queue[bytes | asyncio.Future[None]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        self._read_once(CHUNK)

    def _read_once(self, size: int) -> int:
        """Read a chunk of at most `size` bytes into the queue; its length (0: nothing to read
        now, or the end)."""
        if self._fd is None:
            return 0
        try:
            data = os.read(self._fd, size)
        except BlockingIOError:
            return 0
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        self._chunks.put_nowait(data)
        return len(data)

    def mark(self) -> asyncio.Future[None] | None:
        """Read what the pipe holds now (not when the loop next polls it), and queue a marker
        after it; the future resolves once the reader reached the marker. Only what is there
        now: a writer still going (a thread, a grandchild) cannot keep this reading. None when
        there is nothing to wait for: the pipe is empty and so is the queue (so the reader is
        waiting for a chunk, not handling one)."""
        held = self._held()
        if held == 0 and self._chunks.empty():
            return None
        while held > 0 and (read := self._read_once(min(held, CHUNK))):
            held -= read
        marker: asyncio.Future[None] = self._loop.create_future()
        self._chunks.put_nowait(marker)
        return marker

    def _held(self) -> int:
        """How many bytes the pipe holds now."""
        if self._fd is None:
            return 0
        try:
            answer = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return int.from_bytes(answer, sys.byteorder, signed=True)

    async def read(self) -> bytes | asyncio.Future[None]:
        """The next chunk or marker; b"" once the writer closed its end."""
        chunk = await self._chunks.get()
        if isinstance(chunk, bytes) and not chunk:
            self._chunks.put_nowait(chunk)  # EOF stays EOF
        return chunk
