"""`flowhost serve --workers N`: N serving processes on one listening socket.

One Python process answers a few thousand webhook requests a second before its own CPU is
the limit. The supervisor holds the port (a socket bound with SO_REUSEPORT that does not
listen); each worker process (`flowhost serve` with the hidden pipe options) listens on a
socket of its own on that port, and the kernel spreads new connections evenly over them (one
socket that all accept on would hand most connections to whichever worker wakes first). The
supervisor:

- it is "ready" once every worker wrote a byte on the ready pipe;
- SIGINT/SIGTERM: each worker gets SIGTERM and finishes its requests in progress;
- a worker that exits while not asked to is started again (after RESTART_DELAY, doubling up
  to RESTART_DELAY_MAX while they keep failing fast), with an error logged;
- a worker whose supervisor is gone (SIGKILLed) sees the end of the `alive` pipe and stops,
  so no orphan keeps serving.

Each worker is a full `flowhost serve` (its own pool, group commit, caches, rate limiters
and /metrics figures); docs/operations.md says what that means for limits and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

import click

from flowhost.api.server import HttpServer
from flowhost.cli.common import stop_on_signals
from flowhost.settings import Settings

logger = logging.getLogger(__name__)

READY_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
# A worker that lived this long before exiting was not failing fast: its restart delay resets.
HEALTHY_AFTER = 30.0


class WorkerPipes:
    """The two pipes between the supervisor and its workers: `ready` (workers write one byte
    when they serve) and `alive` (the supervisor holds the write end; its end is the workers'
    signal to stop)."""

    def __init__(self) -> None:
        self.ready_read, self.ready_write = os.pipe()
        self.alive_read, self.alive_write = os.pipe()

    def close(self) -> None:
        for fd in (self.ready_read, self.ready_write, self.alive_read, self.alive_write):
            with contextlib.suppress(OSError):
                os.close(fd)


def worker_command(
    settings: Settings, verbose: int, server: HttpServer, pipes: WorkerPipes
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flowhost",
        "--project",
        str(settings.project_dir),
        *(["-" + "v" * verbose] if verbose else []),
        "serve",
        "--host",
        server.host,
        "--port",
        str(server.port),
        "--ready-fd",
        str(pipes.ready_write),
        "--alive-fd",
        str(pipes.alive_read),
    ]


class Supervisor:
    def __init__(self, command: Sequence[str], pass_fds: Sequence[int], count: int) -> None:
        self._command = list(command)
        self._pass_fds = tuple(pass_fds)
        self._count = count

    async def _start(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*self._command, pass_fds=self._pass_fds)

    async def run(self, ready_read: int, stop: asyncio.Event, on_ready: Callable[[], None]) -> None:
        """Start the workers, call `on_ready()` once each serves, keep them running until
        `stop` is set, then stop them."""
        processes = [await self._start() for _ in range(self._count)]
        try:
            await self._wait_ready(ready_read, processes, stop)
            if stop.is_set():
                return
            on_ready()
            keepers = [
                asyncio.create_task(self._keep(slot, processes, stop), name="flowhost-serve-worker")
                for slot in range(self._count)
            ]
            await stop.wait()
            for task in keepers:
                task.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
        finally:
            await _stop_all(processes)

    async def _wait_ready(
        self, ready_read: int, processes: list[asyncio.subprocess.Process], stop: asyncio.Event
    ) -> None:
        loop = asyncio.get_running_loop()
        ready = 0
        deadline = time.monotonic() + READY_TIMEOUT
        os.set_blocking(ready_read, False)
        while ready < self._count and not stop.is_set():
            exited = [p for p in processes if p.returncode is not None]
            if exited:
                raise click.ClickException(
                    f"a serve worker exited ({exited[0].returncode}) before it was ready"
                )
            if time.monotonic() > deadline:
                raise click.ClickException(f"serve workers not ready after {READY_TIMEOUT:.0f}s")
            readable = loop.create_future()
            loop.add_reader(ready_read, readable.set_result, None)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(readable, 0.2)
            finally:
                loop.remove_reader(ready_read)
            with contextlib.suppress(BlockingIOError):
                ready += len(os.read(ready_read, 64))

    async def _keep(
        self, slot: int, processes: list[asyncio.subprocess.Process], stop: asyncio.Event
    ) -> None:
        delay = RESTART_DELAY
        started = time.monotonic()
        while not stop.is_set():
            status = await processes[slot].wait()
            if stop.is_set():
                return
            lived = time.monotonic() - started
            delay = RESTART_DELAY if lived > HEALTHY_AFTER else delay
            logger.error(
                "serve worker %d exited with status %s; starting it again in %.0fs",
                processes[slot].pid,
                status,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
                return
            delay = min(delay * 2, RESTART_DELAY_MAX)
            processes[slot] = await self._start()
            started = time.monotonic()


async def _stop_all(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_TIMEOUT):
            await asyncio.gather(*(p.wait() for p in processes))
    except TimeoutError:
        for process in processes:
            if process.returncode is None:
                logger.error("serve worker %d did not stop; killing it", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await asyncio.gather(*(p.wait() for p in processes))


async def supervise_workers(
    settings: Settings,
    server: HttpServer,
    *,
    workers: int,
    verbose: int,
    on_ready: Callable[[], None],
) -> None:
    """Serve on `server`'s socket with `workers` processes until SIGINT/SIGTERM."""
    pipes = WorkerPipes()
    try:
        command = worker_command(settings, verbose, server, pipes)
        supervisor = Supervisor(command, (pipes.ready_write, pipes.alive_read), workers)
        stop = asyncio.Event()
        stop_on_signals(stop)
        await supervisor.run(pipes.ready_read, stop, on_ready)
    finally:
        pipes.close()


def signal_ready(ready_fd: int) -> None:
    """A worker tells its supervisor it serves."""
    try:
        os.write(ready_fd, b"1")
    finally:
        os.close(ready_fd)


def stop_when_orphaned(alive_fd: int, stop: asyncio.Event) -> None:
    """Set `stop` once the supervisor is gone (the alive pipe reads as ended)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(alive_fd, False)

    def readable() -> None:
        try:
            data = os.read(alive_fd, 64)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(alive_fd)
            logger.error("the serve supervisor is gone; this worker stops")
            stop.set()

    loop.add_reader(alive_fd, readable)
