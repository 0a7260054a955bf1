"""The child runtime: runs step attempts for the host (docs/protocol.md, "Lifecycle of a child").

`python -m flowhost_worker.child` is a cold child; the zygote calls `run_child()` in a forked
one. Either way the environment names the host's endpoint (`FLOWHOST_ENDPOINT`) and this
child's routing id (`FLOWHOST_WORKER_ID`), and the working directory is the functions
directory. Exit statuses: 0 done or shut down, 70 the host went away, 71 handshake refused.

Everything an `execute` needs is imported before `hello`, so that a job starts running its
handler a fraction of a millisecond after the request arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import inspect
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

from flowhost_worker import __version__
from flowhost_worker.context import RunContext
from flowhost_worker.job import Handlers, Job, failure_data, parse_execute
from flowhost_worker.json_data import json_problem
from flowhost_worker.protocol import PROTOCOL_VERSION, ErrorCode, ProtocolError
from flowhost_worker.rpc import Peer, RemoteError
from flowhost_worker.rpc_backend import Notifier, RpcBackend
from flowhost_worker.transport import DealerTransport

EXIT_DONE = 0
EXIT_HOST_GONE = 70
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# After its last answer the child waits this long for the host's `shutdown` (its receipt).
ANSWER_ACK_TIMEOUT = 10.0
# A host that has not answered hello by then is taken for gone.
HELLO_TIMEOUT = 30.0
EXIT_HANDSHAKE_REFUSED = 71
EXIT_USAGE = 2
SILENT_INTERVALS = 3  # the host is gone after this many heartbeat intervals without a word
# Seconds queued frames may take to leave once the child closes its socket. A last answer does
# not rely on it: the child waits for the host's receipt (`shutdown`) first.
FINAL_FLUSH = 1.0
MAX_WATCH_TICK = 0.25  # how often the watchdog looks at the parent pid and the host's silence


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


_LIBC = _load_libc()  # loaded once, in the zygote: forked children have it already


@dataclasses.dataclass(slots=True)
class RunningJob:
    job: Job
    task: asyncio.Task[Outcome]
    cancelled: str | None = None  # "cancelled: <reason>" once the host cancelled it
    timed_out: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    value: Any = None
    error: BaseException | None = None


class HostLink(DealerTransport):
    """The DEALER connection, remembering when the host was last heard from."""

    def __init__(self, endpoint: str, routing_id: str) -> None:
        super().__init__(endpoint, routing_id)
        self.last_heard = time.monotonic()

    async def receive(self) -> bytes:
        frame = await super().receive()
        self.last_heard = time.monotonic()
        return frame


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (PR_SET_PDEATHSIG), and exit now
    if the parent is already gone: it may have died before the request was made."""
    try:
        if _LIBC is None:
            raise OSError("no C library")
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the parent watch below still notices, a moment later
    if os.getppid() != parent:
        _exit_now(EXIT_HOST_GONE, "the parent process is gone")


class ChildRuntime:
    def __init__(self, endpoint: str, worker_id: str, root: Path, parent: int) -> None:
        self._link = HostLink(endpoint, worker_id)
        self._peer = Peer(self._link)
        self._notifier = Notifier(self._peer)
        self._handlers = Handlers(root)
        self._parent = parent
        self._interval: float | None = None  # known once the host answered hello
        self._running: RunningJob | None = None
        self._stopping = False
        self._awaiting_receipt = False
        self._exit: asyncio.Future[int] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    async def run(self) -> int:
        self._exit = asyncio.get_running_loop().create_future()
        self._peer.on_request("execute", self._execute)
        self._peer.on_notification("cancel", self._cancel)
        self._peer.on_notification("shutdown", self._shutdown)
        self._peer.on_notification("heartbeat", lambda params: None)  # life: see HostLink
        self._spawn(self._serve())
        self._spawn(self._watch())
        try:
            refused = await self._hello()
            if refused is not None:
                return refused
            self._notifier.start()
            self._spawn(self._beat())
            status = await self._exit
            await self._peer.drain()  # the last answer goes out before the socket closes
            return status
        finally:
            await self._stop_background()
            self._link.close(flush=FINAL_FLUSH)

    async def _hello(self) -> int | None:
        params = {
            "protocol": PROTOCOL_VERSION,
            "runtime": "python",
            "sdk_version": __version__,
            "pid": os.getpid(),
        }
        try:
            result = await asyncio.wait_for(self._peer.call("hello", params), HELLO_TIMEOUT)
        except RemoteError as exc:
            _report(f"the host refused the handshake ({exc.code}): {exc.message}")
            return EXIT_HANDSHAKE_REFUSED
        except (ConnectionError, TimeoutError):
            return EXIT_HOST_GONE
        limits = _limits(result)
        if limits is None:
            _report(f"the host's hello result is unusable: {result!r}")
            return EXIT_HANDSHAKE_REFUSED
        self._interval, self._peer.max_frame = limits
        self._link.last_heard = time.monotonic()
        return None

    async def _execute(self, params: dict[str, Any]) -> Any:
        if self._running is not None:
            raise ProtocolError(ErrorCode.BUSY, "a job is already running in this child")
        if self._stopping:
            raise ProtocolError(ErrorCode.BUSY, "this child is shutting down")
        job = parse_execute(params)
        try:
            return await self._run(job)
        finally:
            # So does its output (what it printed at import too, for a handler that cannot be
            # loaded): the host takes what is in the pipes when the answer arrives as all of it.
            flush_output()
            if self._stopping:
                self._finish(EXIT_DONE)
            elif job.last:
                # The host confirms it read the answer with `shutdown`: a ZeroMQ connection
                # closed while the host's side is full can lose the frames still in flight.
                self._stopping = self._awaiting_receipt = True
                asyncio.get_running_loop().call_later(ANSWER_ACK_TIMEOUT, self._finish, EXIT_DONE)

    async def _run(self, job: Job) -> Any:
        try:
            os.environ.update(job.env)
        except ValueError as exc:  # a NUL character, say
            raise ProtocolError(ErrorCode.INVALID_PARAMS, f"execute: env: {exc}") from exc
        handler = self._handlers.load(job)
        backend = RpcBackend(self._peer, self._notifier, step=job.step, emits=job.emits)
        ctx = RunContext(
            backend,
            run_id=job.run_id,
            flow_name=job.flow,
            step_name=job.step,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            idempotency_key=job.idempotency_key,
            awaited=job.awaited,
            hook=None if job.hook is None else job.hook.kind,
            traceparent=job.traceparent,
        )
        label = f"step {job.step}" if job.hook is None else f"hook {job.function}"
        task = asyncio.create_task(_guarded(handler, job.input, ctx), name=label)
        running = self._running = RunningJob(job, task)
        deadline = None
        if job.timeout is not None:
            deadline = asyncio.get_running_loop().call_later(job.timeout, self._expire, running)
        try:
            await asyncio.wait({task})
        finally:
            if deadline is not None:
                deadline.cancel()
            backend.end()
            self._running = None
            await self._notifier.flush()  # the job's logs reach the host before its answer
        return self._answer(running)

    def _answer(self, running: RunningJob) -> Any:
        if running.timed_out:
            raise ProtocolError(
                ErrorCode.STEP_TIMED_OUT, f"the step timed out after {running.job.timeout:g} s"
            )
        if running.cancelled is not None or running.task.cancelled():
            raise ProtocolError(ErrorCode.CANCELLED, running.cancelled or "cancelled")
        outcome = running.task.result()
        if outcome.error is not None:
            data = failure_data(outcome.error)
            raise ProtocolError(
                ErrorCode.STEP_FAILED, f"{data['type']}: {data['message']}", data=data
            )
        problem = json_problem(outcome.value, "the step's return value")
        if problem is not None:
            data = {"type": "TypeError", "message": problem, "stack": "", "retry_delay": None}
            raise ProtocolError(ErrorCode.STEP_FAILED, f"TypeError: {problem}", data=data)
        return {"result": outcome.value}

    def _expire(self, running: RunningJob) -> None:
        if running.cancelled is None and not running.task.done():
            running.timed_out = True
            running.task.cancel("the step's timeout passed")

    def _cancel(self, params: dict[str, Any]) -> None:
        running = self._running
        if running is None or running.task.done() or running.timed_out:
            return  # the job ended while the host decided; its answer is on the way
        reason = params.get("reason")
        running.cancelled = f"cancelled: {reason if isinstance(reason, str) else 'by the host'}"
        running.task.cancel(running.cancelled)

    def _shutdown(self, params: dict[str, Any]) -> None:
        if self._awaiting_receipt:
            # The host has everything this child sent: nothing is left to flush or close
            # gracefully, and skipping that (ZeroMQ's threads, the loop's teardown) is most of
            # what a single-use child costs after its job.
            _exit_quietly(EXIT_DONE)
        # Nothing new starts; a job already running is answered first (see _execute).
        self._stopping = True
        if self._running is None:
            self._finish(EXIT_DONE)

    def _finish(self, status: int) -> None:
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(status)

    async def _serve(self) -> None:
        await self._peer.serve()
        self._finish(EXIT_HOST_GONE)

    async def _beat(self) -> None:
        assert self._interval is not None
        while True:
            try:
                await self._peer.notify("heartbeat", {})
            except ConnectionError:
                return
            await asyncio.sleep(self._interval)

    async def _watch(self) -> None:
        while True:
            interval = self._interval
            await asyncio.sleep(
                MAX_WATCH_TICK if interval is None else min(MAX_WATCH_TICK, interval / 4)
            )
            if os.getppid() != self._parent:
                _exit_now(EXIT_HOST_GONE, "the parent process went away")
            if interval is not None:
                silent = time.monotonic() - self._link.last_heard
                # A handler that blocked the event loop leaves the host's messages unread, not
                # missing: only an empty socket means the host is silent.
                if silent > SILENT_INTERVALS * interval and not self._link.has_pending():
                    _exit_now(EXIT_HOST_GONE, f"the host has been silent for {silent:.1f} s")

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _stop_background(self) -> None:
        await self._notifier.stop()
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _guarded(handler: Callable[..., Any], input: Any, ctx: RunContext) -> Outcome:
    """Run the handler; whatever it raises is its outcome, not the event loop's problem
    (`SystemExit` from a task would otherwise stop the whole child)."""
    try:
        value = handler(input, ctx)
        if inspect.isawaitable(value):
            value = await value
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return Outcome(error=exc)  # the step raised it itself; nobody cancelled it
    except BaseException as exc:
        return Outcome(error=exc)
    return Outcome(value=value)


def _limits(result: Any) -> tuple[float, int] | None:
    """`(heartbeat_interval, max_frame)` from the hello result, if both are usable."""
    if not isinstance(result, dict):
        return None
    interval, max_frame = result.get("heartbeat_interval"), result.get("max_frame")
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        return None
    if isinstance(max_frame, bool) or not isinstance(max_frame, int) or max_frame <= 0:
        return None
    if not math.isfinite(interval) or interval <= 0:
        return None
    return float(interval), max_frame


def flush_output() -> None:
    """Write out what the step printed and is still buffered: Python's streams (the ones the
    step may have swapped in, and the originals), then C's stdio (`printf` from an extension)."""
    streams = {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
    for stream in streams.values():
        with contextlib.suppress(Exception):  # a closed or odd stream must not fail the job
            stream.flush()  # type: ignore[union-attr]
    if _LIBC is not None:
        _LIBC.fflush(None)


def _report(message: str) -> None:
    print(f"flowhost child {os.getpid()}: {message}", file=sys.stderr, flush=True)


def _exit_quietly(status: int) -> NoReturn:
    flush_output()
    os._exit(status)


def _exit_now(status: int, reason: str) -> NoReturn:
    # No cleanup: the job is recovered by the queue, and waiting on anything (a socket to a
    # dead host, a stuck step) is exactly what must not happen.
    _report(f"exiting with status {status}: {reason}")
    _exit_quietly(status)


def _parent(given: int | None) -> int:
    """The host names itself in FLOWHOST_PARENT_PID: if it died before this child looked,
    `getppid()` would already be init's."""
    if given is not None:
        return given
    named = os.environ.get("FLOWHOST_PARENT_PID", "")
    return int(named) if named.isdigit() else os.getppid()


def run_child(
    endpoint: str | None = None, worker_id: str | None = None, *, parent: int | None = None
) -> int:
    """Serve the host until done; the exit status. Arguments default to the environment;
    `parent` is the process whose end ends this child (default: the current parent)."""
    endpoint = endpoint or os.environ.get("FLOWHOST_ENDPOINT")
    worker_id = worker_id or os.environ.get("FLOWHOST_WORKER_ID")
    if not endpoint or not worker_id:
        _report("FLOWHOST_ENDPOINT and FLOWHOST_WORKER_ID must be set (the host starts children)")
        return EXIT_USAGE
    # Ctrl-C in the host's terminal reaches the whole process group; the host decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        runtime = ChildRuntime(endpoint, worker_id, Path.cwd(), _parent(parent))
    except ValueError as exc:
        _report(f"cannot connect: {exc}")
        return EXIT_USAGE
    return asyncio.run(runtime.run())


if __name__ == "__main__":
    raise SystemExit(run_child())
