"""The zygote as a real process: control packets over SOCK_SEQPACKET, forks, exits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest
from fake_host import FakeHost, child_env, execute_params

pytestmark = pytest.mark.asyncio

PRELOAD_DIR = Path(__file__).resolve().parent / "preload"


@dataclass
class Forked:
    pid: int
    pidfd: int
    stdout: int  # read ends of the child's pipes
    stderr: int

    def output(self) -> tuple[str, str]:
        return _read_all(self.stdout), _read_all(self.stderr)


@dataclass
class ZygoteClient:
    """The host's end of the control socket."""

    control: socket.socket
    process: asyncio.subprocess.Process
    pending: list[tuple[dict[str, Any], list[int]]] = field(default_factory=list)
    forked: list[Forked] = field(default_factory=list)

    async def packet(self, kind: str, timeout: float = 10) -> tuple[dict[str, Any], list[int]]:
        """The next packet of type `kind` (others are kept for later)."""
        for index, (message, _) in enumerate(self.pending):
            if message["type"] == kind:
                return self.pending.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            await _readable(self.control, deadline - time.monotonic())
            data, fds, _, _ = socket.recv_fds(self.control, 1 << 16, 4)
            message = msgpack.unpackb(data)
            if message["type"] == kind:
                return message, fds
            self.pending.append((message, fds))

    def send(self, message: dict[str, Any], fds: list[int] = ()) -> None:  # type: ignore[assignment]
        socket.send_fds(self.control, [msgpack.packb(message)], list(fds))

    async def fork(self, host: FakeHost, worker_id: str, **env: str) -> Forked:
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        host.connection(worker_id)
        self.send(
            {
                "type": "fork",
                "worker_id": worker_id,
                "endpoint": host.endpoint,
                "env": child_env(**env),
            },
            [stdout_write, stderr_write],
        )
        os.close(stdout_write)
        os.close(stderr_write)
        message, fds = await self.packet("forked")
        assert message["worker_id"] == worker_id and len(fds) == 1
        forked = Forked(message["pid"], fds[0], stdout_read, stderr_read)
        self.forked.append(forked)
        return forked

    async def exited(self, pid: int) -> dict[str, Any]:
        while True:
            message, _ = await self.packet("exited")
            if message["pid"] == pid:
                return message


@pytest.fixture
async def zygote(functions: Path) -> AsyncIterator[ZygoteClient]:
    client = await start_zygote(functions, preload="warm_numbers,no_such_module_here")
    yield client
    await stop(client)


async def start_zygote(functions: Path, preload: str) -> ZygoteClient:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowhost_worker.zygote",
        "--control-fd",
        str(theirs.fileno()),
        "--preload",
        preload,
        "--path",
        str(PRELOAD_DIR),
        pass_fds=[theirs.fileno()],
        cwd=functions,
        env=child_env(),
    )
    theirs.close()
    ours.setblocking(False)
    return ZygoteClient(ours, process)


async def stop(client: ZygoteClient) -> None:
    client.control.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(client.process.wait(), 5)
    if client.process.returncode is None:
        client.process.kill()
        await client.process.wait()
    for forked in client.forked:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(forked.pidfd, signal.SIGKILL)
        for fd in (forked.pidfd, forked.stdout, forked.stderr):
            with contextlib.suppress(OSError):
                os.close(fd)
    for _, fds in client.pending:
        for fd in fds:
            os.close(fd)


async def _readable(sock: socket.socket, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(sock.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, max(timeout, 0))
    finally:
        loop.remove_reader(sock.fileno())


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def _links(pid: int) -> set[str]:
    """What the process's file descriptors point at (`socket:[inode]`, `pipe:[inode]`, ...)."""
    directory = Path(f"/proc/{pid}/fd")
    return {os.readlink(directory / fd) for fd in os.listdir(directory)}


def _wait_gone(pidfd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


async def test_ready_reports_preloads_and_their_errors(zygote: ZygoteClient) -> None:
    ready, fds = await zygote.packet("ready")
    assert fds == []
    assert ready["pid"] == zygote.process.pid
    assert ready["preloaded"] == ["warm_numbers"]
    [error] = ready["errors"]
    assert error["module"] == "no_such_module_here"
    assert error["error"].startswith("ModuleNotFoundError")


async def test_a_forked_child_runs_a_job_with_the_given_fds_and_env(
    zygote: ZygoteClient, host: FakeHost, functions: Path
) -> None:
    await zygote.packet("ready")
    forked_at = time.monotonic()
    forked = await zygote.fork(host, "z1", API_TOKEN="t0k")
    connection = host.connections["z1"]
    await asyncio.wait_for(connection.hello_seen.wait(), 10)
    assert connection.hello_at is not None
    print(f"fork -> hello received: {(connection.hello_at - forked_at) * 1e3:.2f} ms")
    assert connection.hello is not None and connection.hello["pid"] == forked.pid
    zygote_sockets = {link for link in _links(zygote.process.pid) if link.startswith("socket:")}
    assert zygote_sockets, "the zygote holds its control socket"
    assert not zygote_sockets & _links(forked.pid), "the child kept a zygote socket"
    steps = functions / "steps.py"
    env = await connection.peer.call(
        "execute", execute_params(steps, "environment", env={"REGION": "eu"}, last=False)
    )
    assert env["result"]["API_TOKEN"] == "t0k" and env["result"]["REGION"] == "eu"
    assert env["result"]["FLOWHOST_WORKER_ID"] == "z1"
    assert set(env["result"]) == {
        "PATH",
        "PYTHONPATH",
        "API_TOKEN",
        "REGION",
        "FLOWHOST_ENDPOINT",
        "FLOWHOST_WORKER_ID",
    }
    warm = await connection.peer.call("execute", execute_params(steps, "preloaded"))
    assert warm["result"] == ["warm_numbers"]
    assert await zygote.exited(forked.pid) == {
        "type": "exited",
        "pid": forked.pid,
        "exit_code": 0,
        "signal": None,
    }
    stdout, stderr = forked.output()
    assert stdout == "" and stderr == ""


async def test_the_pidfd_signals_the_child_and_exits_report_codes_and_signals(
    zygote: ZygoteClient, host: FakeHost, functions: Path
) -> None:
    await zygote.packet("ready")
    terminated = await zygote.fork(host, "z-term")
    crashed = await zygote.fork(host, "z-segv")
    for worker_id in ("z-term", "z-segv"):
        await asyncio.wait_for(host.connections[worker_id].hello_seen.wait(), 10)

    signal.pidfd_send_signal(terminated.pidfd, signal.SIGTERM)
    assert (await zygote.exited(terminated.pid))["signal"] == signal.SIGTERM

    segv_call = asyncio.create_task(
        host.connections["z-segv"].peer.call(
            "execute", execute_params(functions / "steps.py", "segfaults")
        )
    )
    segv = await zygote.exited(crashed.pid)
    assert (segv["exit_code"], segv["signal"]) == (None, signal.SIGSEGV)
    assert not segv_call.done()  # never answered: the host tells the cause from `exited`
    segv_call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await segv_call


async def test_closing_the_control_socket_ends_the_zygote_and_idle_children(
    functions: Path, host: FakeHost
) -> None:
    client = await start_zygote(functions, preload="")
    try:
        await client.packet("ready")
        idle = await client.fork(host, "z-idle")
        await asyncio.wait_for(host.connections["z-idle"].hello_seen.wait(), 10)
        client.control.close()
        assert await asyncio.wait_for(client.process.wait(), 5) == 0
        # Killed by the kernel as its parent died (PR_SET_PDEATHSIG); were that not available,
        # its parent watch would end it with status 70 a moment later.
        assert _wait_gone(idle.pidfd, 5), "the idle child outlived its zygote"
    finally:
        await stop(client)


async def test_bad_packets_are_ignored_and_a_readable_worker_id_gets_fork_failed(
    zygote: ZygoteClient, host: FakeHost
) -> None:
    await zygote.packet("ready")
    zygote.control.send(b"\xc1")  # not msgpack
    zygote.send({"type": "explode"})
    zygote.send({"type": "fork", "worker_id": "z-bad", "endpoint": host.endpoint, "env": {}})
    failed, _ = await zygote.packet("fork_failed")
    assert failed["worker_id"] == "z-bad" and "expected 2 fds" in failed["error"]
    forked = await zygote.fork(host, "z-after")  # still serving
    await asyncio.wait_for(host.connections["z-after"].hello_seen.wait(), 10)
    assert forked.pid > 0
