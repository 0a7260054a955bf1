"""Starting children: forks of a Python zygote, or fresh Node processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Protocol

from flowhost.workers.commands import RuntimeCommands
from flowhost.workers.environment import base_environment, child_environment
from flowhost.workers.output import ChunkSource, PipeReader
from flowhost.workers.processes import ChildProcess, ExitStatus, open_pidfd
from flowhost.workers.zygote import Zygote

Launched = tuple[ChildProcess, ChunkSource, ChunkSource]


class Launcher(Protocol):
    runtime: str

    async def launch(self, worker_id: str, endpoint: str) -> Launched: ...

    async def close(self) -> None: ...


class PythonLauncher:
    """Forks children from one zygote (per interpreter and `preload` set), started lazily."""

    runtime = "python"

    def __init__(
        self,
        interpreter: str,
        preload: tuple[str, ...],
        functions_dir: Path,
        sdk_path: Path | None = None,
    ) -> None:
        self._zygote = Zygote(interpreter, preload, functions_dir, sdk_path)
        self._starting: asyncio.Task[None] | None = None
        self._base_environment = base_environment()

    async def launch(self, worker_id: str, endpoint: str) -> Launched:
        if self._starting is None or (self._starting.done() and not self._zygote.alive):
            self._starting = asyncio.create_task(self._zygote.start())
        await asyncio.shield(self._starting)
        process, out_fd, err_fd = await self._zygote.fork(
            worker_id, endpoint, child_environment(worker_id, endpoint, self._base_environment)
        )
        return process, PipeReader(out_fd), PipeReader(err_fd)

    async def close(self) -> None:
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        await self._zygote.close()


class NodeLauncher:
    """Starts `node <sdk>/src/runtime/child.js` processes (with a heap cap when one is set)."""

    runtime = "node"

    def __init__(
        self, commands: RuntimeCommands, memory_mb: int | None, functions_dir: Path
    ) -> None:
        self._commands = commands
        self._memory_mb = memory_mb
        self._functions_dir = functions_dir
        self._waits: set[asyncio.Task[None]] = set()
        self._base_environment = base_environment()

    async def launch(self, worker_id: str, endpoint: str) -> Launched:
        node, *rest = self._commands.node_script("child.js")
        heap = [f"--max-old-space-size={self._memory_mb}"] if self._memory_mb else []
        # Plain pipes read by PipeReader, as for Python children: the host reads them up to a
        # job's answer without waiting for the loop (OutputReader.settle).
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                node,
                *heap,
                *rest,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
                env=child_environment(worker_id, endpoint, self._base_environment),
                cwd=self._functions_dir,
                start_new_session=True,
            )
        except BaseException:
            for fd in (out_read, err_read):
                os.close(fd)
            raise
        finally:
            os.close(out_write)
            os.close(err_write)
        exited: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        child = ChildProcess(process.pid, open_pidfd(process.pid), exited)

        async def wait() -> None:
            exited.set_result(ExitStatus.from_returncode(await process.wait()))

        task = asyncio.create_task(wait())
        self._waits.add(task)
        task.add_done_callback(self._waits.discard)
        return child, PipeReader(out_read), PipeReader(err_read)

    async def close(self) -> None:
        if self._waits:
            await asyncio.wait(self._waits, timeout=5.0)


def worker_identity(prefix: str, counter: int) -> str:
    return f"{prefix}-{os.getpid()}-{counter}"
