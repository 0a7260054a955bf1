"""The Python zygote: forks warm children for the host (docs/protocol.md, "The Python zygote").

`python -m flowhost_worker.zygote --control-fd 3 [--preload mod,mod] [--path DIR]`

It imports the SDK, pyzmq, msgpack and the preload modules once, then forks a child per `fork`
packet: the child skips interpreter start-up and imports and goes straight to `hello`. The
zygote itself never creates a ZeroMQ context, an event loop or a thread, none of which survive
a fork; it is one `poll` loop over the control socket and a pidfd per child.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import os
import random
import select
import signal
import socket
import sys
import traceback
from typing import Any, NoReturn

import msgpack  # type: ignore[import-untyped]  # ships no type information

import flowhost_worker.child as child_runtime  # imported here so forked children start warm

MAX_PACKET = 256 * 1024  # a fork packet carries an environment; the kernel caps far below
MAX_FDS = 4  # more than the two a fork carries, so that extra ones are seen and closed
HANGUP = select.POLLHUP | select.POLLRDHUP | select.POLLERR | select.POLLNVAL


@dataclasses.dataclass(frozen=True, slots=True)
class ForkRequest:
    worker_id: str
    endpoint: str
    env: dict[str, str]
    stdout: int
    stderr: int


class BadPacket(Exception):
    """A control packet the zygote cannot act on; logged and ignored."""

    def __init__(self, message: str, worker_id: str | None = None) -> None:
        super().__init__(message)
        self.worker_id = worker_id


class Zygote:
    def __init__(self, control: socket.socket) -> None:
        self._control = control
        self._poller = select.poll()
        self._poller.register(control.fileno(), select.POLLIN | select.POLLRDHUP)
        self._children: dict[int, int] = {}  # pidfd -> pid

    def serve(self) -> None:
        """Until the host closes the control socket."""
        while True:
            for fd, events in self._poller.poll():
                if fd != self._control.fileno():
                    self._reap(fd)
                elif not self._read_control(events):
                    return

    def send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        socket.send_fds(self._control, [msgpack.packb(message, use_bin_type=True)], fds or [])

    def _read_control(self, events: int) -> bool:
        """Handle one packet; False once the host is gone."""
        if not events & select.POLLIN:
            return False
        data, fds, flags, _ = socket.recv_fds(self._control, MAX_PACKET, MAX_FDS)
        if not data and not fds:
            # SOCK_SEQPACKET reads an empty packet at EOF; the hang-up flag tells EOF from an
            # empty packet sent on purpose.
            if events & HANGUP:
                return False
            _log("ignored an empty control packet")
            return True
        try:
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise BadPacket("a control packet was truncated")
            request = _fork_request(data, fds)
        except BadPacket as exc:
            for fd in fds:
                os.close(fd)
            _log(f"ignored a control packet: {exc}")
            if exc.worker_id is not None:
                self.send({"type": "fork_failed", "worker_id": exc.worker_id, "error": str(exc)})
            return True
        self._fork(request)
        return True

    def _fork(self, request: ForkRequest) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would print the zygote's buffered output again
        zygote = os.getpid()
        try:
            pid = os.fork()
        except OSError as exc:
            self._close_fds(request)
            self.send({"type": "fork_failed", "worker_id": request.worker_id, "error": str(exc)})
            return
        if pid == 0:
            self._become_child(request, zygote)
        self._close_fds(request)
        pidfd = os.pidfd_open(pid)
        self._children[pidfd] = pid
        self._poller.register(pidfd, select.POLLIN)
        self.send({"type": "forked", "worker_id": request.worker_id, "pid": pid}, [pidfd])

    def _become_child(self, request: ForkRequest, zygote: int) -> NoReturn:
        status = 1
        try:
            child_runtime.die_with_parent(zygote)
            self._control.close()
            for pidfd in self._children:
                os.close(pidfd)
            os.dup2(request.stdout, 1)
            os.dup2(request.stderr, 2)
            self._close_fds(request)
            os.setpgid(0, 0)  # the host signals the child's group, never the zygote's
            os.environ.clear()
            os.environ.update(request.env)
            os.environ["FLOWHOST_ENDPOINT"] = request.endpoint
            os.environ["FLOWHOST_WORKER_ID"] = request.worker_id
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            random.seed()  # siblings must not share the zygote's random sequence
            status = child_runtime.run_child(request.endpoint, request.worker_id, parent=zygote)
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):  # a closed pipe must not stop the exit
                    stream.flush()
            os._exit(status)  # never back into the zygote's loop

    def _reap(self, pidfd: int) -> None:
        pid = self._children.pop(pidfd)
        self._poller.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)  # readable pidfd: the child has exited
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        signal_number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        self.send({"type": "exited", "pid": pid, "exit_code": exit_code, "signal": signal_number})

    @staticmethod
    def _close_fds(request: ForkRequest) -> None:
        for fd in {request.stdout, request.stderr} - {1, 2}:
            os.close(fd)


def _fork_request(data: bytes, fds: list[int]) -> ForkRequest:
    try:
        packet = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # msgpack raises several types; each means "not a packet"
        raise BadPacket(f"not msgpack: {exc}") from exc
    if not isinstance(packet, dict) or packet.get("type") != "fork":
        kind = packet.get("type") if isinstance(packet, dict) else type(packet).__name__
        raise BadPacket(f"unknown packet {kind!r}")
    worker_id = packet.get("worker_id")
    if not isinstance(worker_id, str) or not worker_id:
        raise BadPacket("fork: worker_id must be a non-empty string")
    endpoint, env = packet.get("endpoint"), packet.get("env")
    if not isinstance(endpoint, str) or not endpoint:
        raise BadPacket("fork: endpoint must be a non-empty string", worker_id)
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and "=" not in k and "\0" not in k + v
        for k, v in env.items()
    ):
        raise BadPacket("fork: env must map variable names to strings", worker_id)
    if len(fds) != 2:
        raise BadPacket(f"fork: expected 2 fds (stdout, stderr), got {len(fds)}", worker_id)
    return ForkRequest(worker_id, endpoint, env, fds[0], fds[1])


def _preload(modules: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    loaded, errors = [], []
    for name in modules:
        try:
            importlib.import_module(name)
        except (Exception, SystemExit) as exc:  # reported to the host, not fatal
            errors.append({"module": name, "error": f"{type(exc).__name__}: {exc}"})
        else:
            loaded.append(name)
    return loaded, errors


def _log(message: str) -> None:
    print(f"flowhost zygote {os.getpid()}: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowhost_worker.zygote")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--preload", default="", help="modules to import, comma-separated")
    parser.add_argument("--path", action="append", default=[], help="a directory for sys.path")
    args = parser.parse_args(argv)
    # The host stops the zygote by closing the control socket; a Ctrl-C meant for the host
    # must not kill it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        control = socket.socket(fileno=args.control_fd)
    except OSError as exc:
        _log(f"--control-fd {args.control_fd} is not a socket: {exc}")
        return 2
    if control.type != socket.SOCK_SEQPACKET:
        _log(f"--control-fd {args.control_fd} must be a SOCK_SEQPACKET socket")
        return 2
    for directory in reversed(args.path):
        sys.path.insert(0, directory)
    loaded, errors = _preload([name for name in args.preload.split(",") if name])
    # Everything imported so far is shared with every child; kept out of the collector, it is
    # not written to (and so not copied) when a child collects garbage.
    gc.freeze()
    zygote = Zygote(control)
    try:
        zygote.send({"type": "ready", "pid": os.getpid(), "preloaded": loaded, "errors": errors})
        zygote.serve()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the host is gone: the same as a closed control socket
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
