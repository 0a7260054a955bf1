"""The host's end of a Python zygote: a warm interpreter that forks children on request.

The protocol is in docs/protocol.md ("The Python zygote"): msgpack packets over a
SOCK_SEQPACKET pair, file descriptors beside them. The zygote is the children's parent, so it
reaps them and reports how each one ended; the host signals them through pidfds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]  # ships no type information

from flowhost.errors import FlowhostError
from flowhost.workers.environment import base_environment
from flowhost.workers.processes import ChildProcess, ExitStatus, open_pidfd

logger = logging.getLogger(__name__)

READY_TIMEOUT = 60.0
FORK_TIMEOUT = 10.0
PACKET = 64 * 1024


class ZygoteError(FlowhostError):
    """The zygote could not start, or stopped."""


class Zygote:
    def __init__(
        self, interpreter: str, preload: Sequence[str], path: Path, sdk_path: Path | None = None
    ) -> None:
        self.interpreter = interpreter
        self.preload = tuple(preload)
        self.path = path
        # Put ahead of the interpreter's own flowhost_worker (RuntimeCommands.python_sdk_path).
        self.sdk_path = sdk_path
        self._socket: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._forks: dict[str, asyncio.Future[tuple[int, int | None]]] = {}
        self._exits: dict[int, asyncio.Future[ExitStatus]] = {}
        self._early_exits: dict[int, ExitStatus] = {}
        self._pidfds: dict[int, int] = {}
        self._logs: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [self.interpreter, "-m", "flowhost_worker.zygote"]
        argv += ["--control-fd", str(theirs.fileno()), "--path", str(self.path)]
        if self.preload:
            argv += ["--preload", ",".join(self.preload)]
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env=self._environment(),
                cwd=self.path,
                start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise ZygoteError(
                f"cannot start a Python zygote with {self.interpreter}: {exc}"
            ) from exc
        finally:
            theirs.close()
        for stream in (self._process.stdout, self._process.stderr):
            assert stream is not None
            self._logs.append(asyncio.create_task(self._log_output(stream)))
        ours.setblocking(False)
        self._socket = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        try:
            ready = await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT)
        except (TimeoutError, ZygoteError) as exc:
            await self.close()
            raise ZygoteError(
                f"the Python zygote ({self.interpreter}) did not start: {exc}"
            ) from exc
        for failure in ready.get("errors") or []:
            logger.warning(
                "preloading %s in the zygote of %s failed: %s",
                failure.get("module"),
                self.interpreter,
                failure.get("error"),
            )

    def _environment(self) -> dict[str, str]:
        env = base_environment()
        if self.sdk_path is not None:
            # Read by the zygote's interpreter at start; its children inherit the import path
            # (not the variable: each gets exactly the environment the host sends).
            env["PYTHONPATH"] = str(self.sdk_path)
        return env

    @property
    def alive(self) -> bool:
        return self._socket is not None

    async def fork(
        self, worker_id: str, endpoint: str, env: dict[str, str]
    ) -> tuple[ChildProcess, int, int]:
        """A new child; returns it with the read ends of its stdout and stderr pipes."""
        if self._socket is None:
            raise ZygoteError("the zygote has stopped")
        loop = asyncio.get_running_loop()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        future: asyncio.Future[tuple[int, int | None]] = loop.create_future()
        self._forks[worker_id] = future
        packet = msgpack.packb(
            {"type": "fork", "worker_id": worker_id, "endpoint": endpoint, "env": env}
        )
        try:
            socket.send_fds(self._socket, [packet], [out_write, err_write])
        except OSError as exc:
            for fd in (out_read, err_read):
                os.close(fd)
            self._forks.pop(worker_id, None)
            raise ZygoteError(f"cannot reach the zygote: {exc}") from exc
        finally:
            os.close(out_write)
            os.close(err_write)
        try:
            pid, pidfd = await asyncio.wait_for(future, FORK_TIMEOUT)
        except BaseException:
            for fd in (out_read, err_read):
                os.close(fd)
            raise
        finally:
            self._forks.pop(worker_id, None)
        exited: asyncio.Future[ExitStatus] = loop.create_future()
        early = self._early_exits.pop(pid, None)
        if early is not None:
            exited.set_result(early)
        else:
            self._exits[pid] = exited
            exited.add_done_callback(lambda _: self._exits.pop(pid, None))
        return ChildProcess(pid, pidfd, exited), out_read, err_read

    def _on_readable(self) -> None:
        assert self._socket is not None
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(self._socket, PACKET, 4)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lost(f"control socket failed: {exc}")
                return
            if not data:
                self._lost("the zygote exited")
                return
            try:
                message = msgpack.unpackb(data)
                self._handle(message, fds)
            except Exception:
                logger.exception("unreadable packet from the zygote")
                for fd in fds:
                    os.close(fd)

    def _handle(self, message: dict[str, Any], fds: list[int]) -> None:
        kind = message.get("type")
        if kind == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(message)
        elif kind == "forked":
            future = self._forks.get(message["worker_id"])
            pidfd = fds[0] if fds else None
            if future is None or future.done():
                for fd in fds:
                    os.close(fd)
                return
            future.set_result((int(message["pid"]), pidfd))
            return
        elif kind == "fork_failed":
            future = self._forks.get(message["worker_id"])
            if future is not None and not future.done():
                future.set_exception(ZygoteError(f"fork failed: {message.get('error')}"))
        elif kind == "exited":
            status = ExitStatus(message.get("exit_code"), message.get("signal"))
            exited = self._exits.get(int(message["pid"]))
            if exited is None:
                self._early_exits[int(message["pid"])] = status
            elif not exited.done():
                exited.set_result(status)
        for fd in fds:
            os.close(fd)

    def _lost(self, reason: str) -> None:
        """The zygote is gone: pending forks fail; its children, re-parented, exit on their
        own (their parent changed), and each is seen ending through its pidfd."""
        if self._socket is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._socket.fileno())
        self._socket.close()
        self._socket = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ZygoteError(reason))
        for future in self._forks.values():
            if not future.done():
                future.set_exception(ZygoteError(reason))
        for pid, exited in list(self._exits.items()):
            self._watch_orphan(pid, exited)

    def _watch_orphan(self, pid: int, exited: asyncio.Future[ExitStatus]) -> None:
        pidfd = open_pidfd(pid)
        if pidfd is None:
            if not exited.done():
                exited.set_result(ExitStatus(None, None))
            return
        loop = asyncio.get_running_loop()

        def ended() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not exited.done():
                exited.set_result(ExitStatus(None, None))

        loop.add_reader(pidfd, ended)

    async def _log_output(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            logger.warning(
                "zygote %s: %s", self.interpreter, line.decode(errors="replace").rstrip()
            )

    async def close(self) -> None:
        """Stop the zygote: closing its control socket makes it exit."""
        self._lost("the zygote was stopped")
        if self._process is not None and self._process.returncode is None:
            try:
                await asyncio.wait_for(self._process.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                await self._process.wait()
        for task in self._logs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 1.0)
