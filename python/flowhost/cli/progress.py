"""A status line at the bottom of a terminal while a command waits (`run`, `runs logs
--follow`): a spinner, what it waits for, the time spent. Drawn on stderr, and only when stderr
is a terminal, so piped or redirected output never holds it."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from typing import TextIO

import click

from flowhost.cli.output import colour_enabled, unicode_enabled

UNICODE_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_FRAMES = "|/-\\"
REDRAW_INTERVAL = 0.1
CLEAR = "\r\x1b[2K"


class StatusLine:
    """`async with StatusLine("...") as status:` draws the line until the block ends; set
    `status.text` to change what it says, and print other lines through `status.echo` so that
    they do not mix with it."""

    def __init__(self, text: str = "", *, stream: TextIO | None = None) -> None:
        self.text = text
        self._stream = stream or sys.stderr
        self.enabled = self._stream.isatty()
        self._frames = UNICODE_FRAMES if unicode_enabled(self._stream) else ASCII_FRAMES
        self._frame = 0
        self._began = time.monotonic()
        self._shown = False
        self._ticker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StatusLine:
        self._began = time.monotonic()
        if self.enabled:
            self._ticker = asyncio.create_task(self._tick(), name="flowhost-status-line")
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self.clear()

    def echo(self, line: str) -> None:
        """Print `line` on stdout, above the status line."""
        self.clear()
        click.echo(line)
        if self._ticker is not None:
            self.draw()

    def draw(self) -> None:
        elapsed = time.monotonic() - self._began
        frame = self._frames[self._frame % len(self._frames)]
        self._frame += 1
        width = shutil.get_terminal_size().columns - 1
        line = f"{frame} {self.text} · {elapsed:.1f} s"[:width]
        if colour_enabled():
            line = click.style(line, dim=True)
        self._stream.write(CLEAR + line)
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._stream.write(CLEAR)
            self._stream.flush()
            self._shown = False

    async def _tick(self) -> None:
        while True:
            self.draw()
            await asyncio.sleep(REDRAW_INTERVAL)
