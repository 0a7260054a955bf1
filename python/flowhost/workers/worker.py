"""The host's end of one child process: its connection, the calls it makes, its output."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from flowhost import metrics
from flowhost.workers import failures
from flowhost.workers.output import OutputBudget, OutputReader
from flowhost.workers.processes import ChildProcess
from flowhost.workers.router import RouterTransport
from flowhost_worker.context import LEVELS, ContextBackend
from flowhost_worker.errors import ActionError
from flowhost_worker.protocol import PROTOCOL_VERSION, SUPPORTED_VERSIONS, ErrorCode, ProtocolError
from flowhost_worker.rpc import Peer

logger = logging.getLogger(__name__)

MAX_STATE_KEY = 256
OUTPUT_TAIL_LINES = 40
# Log and progress notifications kept per attempt; beyond, they are counted (the host's memory
# must not be at the mercy of a step logging in a loop).
MAX_LOGS_PER_ATTEMPT = 10_000
# A child's stdout lines are info logs of its attempt, its stderr lines warnings.
OUTPUT_LEVELS = {"stdout": "info", "stderr": "warning"}

Params = dict[str, Any]
LogEntry = tuple[str, str, dict[str, Any]]  # (level, message, fields), as ContextBackend.log
# Records an attempt's late output (written after its answer) once its outcome is recorded.
LateOutputSink = Callable[[list[LogEntry]], Awaitable[None]]


class JobBinding:
    """What a child's calls act on while it runs one attempt.

    Once the child answered and the output it wrote before is in (`answered`), the attempt's
    outcome is recorded without waiting for the child to exit; output that still comes (a
    thread or a grandchild of the step, writing after the answer) is kept in `late`, within
    the same budget, for `late_output` to record on its own.

    Emits sent as notifications are kept in `emits`, in the order they came, and handed to the
    backend once the child answered with a result (`record_emits`): the child did not wait for
    the host to accept them, so one the host refuses fails the attempt there."""

    def __init__(
        self,
        backend: ContextBackend,
        step: str,
        late_output: LateOutputSink | None = None,
        *,
        run_id: str | None = None,
        attempt: int | None = None,
    ) -> None:
        self.backend = backend
        self.step = step
        # Which attempt the child runs, as the dashboard's process list shows it.
        self.run_id = run_id
        self.attempt = attempt
        self.output = OutputBudget()
        self.logs = 0
        self.dropped_logs = 0
        self.late_output = late_output
        self.answered = False
        self.late: list[LogEntry] = []
        self.emits: list[tuple[str, Any]] = []
        self._answer_arrived = False
        self._emits_taken = False
        # Why the attempt cannot count even if the child answers with a result: it sent
        # something the host could not take, which may have been an emit.
        self.spoiled: str | None = None

    def answer_arrived(self) -> None:
        """The child's answer to `execute` is in: every emit of the attempt came before it."""
        self._answer_arrived = True

    def emitted(self, params: Params) -> None:
        """An `emit` notification of this attempt."""
        if self._emits_taken:
            # Its outcome is being recorded: too late to count, or to fail the attempt.
            logger.warning(
                "dropped an emit that step %s sent after its answer (a child must not)", self.step
            )
            return
        if self._answer_arrived:
            self.spoil("an emit came after the answer (a child sends every emit before it)")
            return
        name = params.get("name")
        if not isinstance(name, str) or not name:
            self.spoil("an emit without a non-empty string name")
            return
        self.emits.append((name, params.get("payload")))

    def spoil(self, reason: str) -> None:
        if self.spoiled is None:
            self.spoiled = reason

    async def record_emits(self) -> None:
        """Hand the attempt's emits to its backend, once the child answered with a result;
        ChildFailure if the host refuses one, or the child sent what the host could not take."""
        self._emits_taken = True
        if self.spoiled is not None:
            raise failures.protocol_failure(self.spoiled)
        for name, payload in self.emits:
            try:
                await self.backend.emit(name, payload)
            except (TypeError, ValueError) as exc:
                raise failures.emit_refused(name, str(exc)) from None

    def output_line(self, stream: str, line: str) -> None:
        if not self.output.admit(line):
            return
        if self.answered:
            self.late.append((OUTPUT_LEVELS[stream], line, {"stream": stream, "late": True}))
        else:
            self.backend.log(OUTPUT_LEVELS[stream], line, {"stream": stream})

    def admit_log(self) -> bool:
        if self.logs >= MAX_LOGS_PER_ATTEMPT:
            self.dropped_logs += 1
            return False
        self.logs += 1
        return True


class Worker:
    """A started child: `ready` resolves once it said hello; `execute` runs one attempt."""

    def __init__(
        self,
        worker_id: str,
        runtime: str,
        process: ChildProcess,
        transport: RouterTransport,
        *,
        host_id: str,
        heartbeat_interval: float,
        max_frame: int,
    ) -> None:
        self.id = worker_id
        self.runtime = runtime
        self.process = process
        self.transport = transport
        self.host_id = host_id
        self.heartbeat_interval = heartbeat_interval
        self.job: JobBinding | None = None
        self.jobs_done = 0
        self.output_tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        self.output_readers: list[OutputReader] = []
        self.ready: asyncio.Future[Params] = asyncio.get_running_loop().create_future()
        self.peer = Peer(transport, max_frame=max_frame, on_broken_frame=self._broken_frame)
        self._greeted = False
        self._register()
        self._serving = asyncio.create_task(self.peer.serve(), name=f"flowhost-worker {worker_id}")
        process.exited.add_done_callback(lambda _: self._on_exit())

    @property
    def silent_for(self) -> float:
        return asyncio.get_running_loop().time() - self.transport.last_heard

    @property
    def usable(self) -> bool:
        return self.process.alive and self.ready.done() and not self.ready.exception()

    async def execute(self, params: Params) -> Any:
        began = time.perf_counter()
        job = self.job
        try:
            return await self.peer.call(
                "execute", params, on_response=None if job is None else job.answer_arrived
            )
        finally:
            metrics.RPC.labels(self.runtime, "execute").observe(time.perf_counter() - began)

    async def notify(self, method: str, params: Params | None = None) -> None:
        with contextlib.suppress(ConnectionError):
            await self.peer.notify(method, params)

    def on_output(self, stream: str, line: str) -> None:
        self.output_tail.append(line)
        job = self.job
        if job is not None:
            job.output_line(stream, line)
            return
        # Between the jobs of a child kept for `reuse`: no attempt owns the line.
        logger.info("worker %s %s (no job running): %s", self.id, stream, line)

    async def settle_output(self) -> None:
        """Hand the running job every line the child wrote before its answer: the child
        flushed its output before answering, so it is all in the pipes by now."""
        for reader in self.output_readers:
            await reader.settle()  # returns at once, the usual case, when nothing is left

    async def output_finished(self, timeout: float) -> None:
        """Wait (at most `timeout`) until the child's pipes are drained and closed."""
        if self.output_readers:
            await asyncio.wait([reader.task for reader in self.output_readers], timeout=timeout)

    def tail(self) -> str:
        return "\n".join(self.output_tail)

    def disconnect(self) -> None:
        self.transport.close()

    def _on_exit(self) -> None:
        if not self.ready.done():
            status = self.process.exited.result()
            self.ready.set_exception(
                ConnectionError(f"worker exited before its handshake ({status.describe()})")
            )
            self.ready.exception()  # retrieved: a pool that gave up on it need not look

    # -- calls from the child --------------------------------------------------------------

    def _register(self) -> None:
        self.peer.on_request("hello", self._hello)
        job_calls: dict[str, Callable[[JobBinding, Params], Awaitable[Any]]] = {
            "state.get": self._state_get,
            "state.set": self._state_set,
            "state.delete": self._state_delete,
            "state.list": self._state_list,
            "emit": self._emit,
            "flow.start": self._flow_start,
            "flow.cancel": self._flow_cancel,
            "flow.is_running": self._flow_is_running,
            "flow.running": self._flow_running,
            "flow.stats": self._flow_stats,
            "publish.mqtt": lambda job, params: job.backend.publish_mqtt(params),
            "publish.amqp": lambda job, params: job.backend.publish_amqp(params),
            "http.request": lambda job, params: job.backend.http_request(params),
        }
        for method, handler in job_calls.items():
            self.peer.on_request(method, self._job_call(method, handler))
        self.peer.on_notification("emit", self._emitted)
        self.peer.on_notification("log", self._log)
        self.peer.on_notification("progress", self._progress)
        self.peer.on_notification("heartbeat", lambda _params: None)

    async def _hello(self, params: Params) -> Params:
        if self._greeted:
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "hello was already done")
        version = params.get("protocol")
        if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
            self._refuse(f"protocol version {version!r} is not supported")
            raise ProtocolError(
                ErrorCode.VERSION_MISMATCH,
                f"protocol version {version!r} is not supported",
                data={"supported": list(SUPPORTED_VERSIONS)},
            )
        if params.get("runtime") != self.runtime:
            self._refuse(f"expected a {self.runtime} worker")
            raise ProtocolError(
                ErrorCode.INVALID_PARAMS, f"this endpoint serves {self.runtime} workers"
            )
        self._greeted = True
        if not self.ready.done():
            self.ready.set_result(params)
        return {
            "protocol": PROTOCOL_VERSION,
            "host_id": self.host_id,
            "heartbeat_interval": self.heartbeat_interval,
            "max_frame": self.peer.max_frame,
        }

    def _refuse(self, reason: str) -> None:
        """Stop a child whose handshake failed, once it had the chance to read why."""
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"handshake refused: {reason}"))
            self.ready.exception()
        asyncio.get_running_loop().call_later(0.5, self.process.kill)

    def _job_call(
        self, method: str, handler: Callable[[JobBinding, Params], Awaitable[Any]]
    ) -> Callable[[Params], Awaitable[Any]]:
        timing = metrics.RPC.labels(self.runtime, method)

        async def call(params: Params) -> Any:
            job = self._current_job()
            began = time.perf_counter()
            try:
                return await handler(job, params)
            except (TypeError, ValueError) as exc:
                raise ProtocolError(ErrorCode.INVALID_PARAMS, str(exc)) from exc
            except ActionError as exc:
                raise ProtocolError(ErrorCode.ACTION_FAILED, str(exc)) from exc
            finally:
                timing.observe(time.perf_counter() - began)

        return call

    def _current_job(self) -> JobBinding:
        if not self._greeted:
            self._refuse("a call before hello")
            raise ProtocolError(ErrorCode.HANDSHAKE_REQUIRED, "say hello first")
        if self.job is None:
            raise ProtocolError(ErrorCode.NO_JOB_RUNNING, "no job is running in this worker")
        return self.job

    async def _state_get(self, job: JobBinding, params: Params) -> Params:
        found, value = await job.backend.state_get(_state_key(params))
        return {"found": found, "value": value}

    async def _state_set(self, job: JobBinding, params: Params) -> None:
        if "value" not in params:
            raise ValueError("state.set needs a value")
        await job.backend.state_set(_state_key(params), params["value"])

    async def _state_delete(self, job: JobBinding, params: Params) -> Params:
        return {"deleted": await job.backend.state_delete(_state_key(params))}

    async def _state_list(self, job: JobBinding, params: Params) -> Params:
        return {"keys": sorted(await job.backend.state_list())}

    async def _emit(self, job: JobBinding, params: Params) -> None:
        await job.backend.emit(_text(params, "name"), params.get("payload"))

    async def _flow_start(self, job: JobBinding, params: Params) -> Params:
        # The start options are checked where they are used (StartOptions.from_params): a
        # refused one is a ValueError, answered as invalid params.
        options = {k: v for k, v in params.items() if k not in ("flow", "input")}
        run_id = await job.backend.flow_start(_text(params, "flow"), params.get("input"), options)
        return {"run_id": run_id}

    async def _flow_running(self, job: JobBinding, params: Params) -> Params:
        excluded = _run_id_list(params)
        runs = await job.backend.flow_running(_optional_text(params, "flow"), excluded)
        return {"runs": runs}

    async def _flow_stats(self, job: JobBinding, params: Params) -> Params:
        return {"stats": await job.backend.flow_stats(_optional_text(params, "flow"))}

    async def _flow_cancel(self, job: JobBinding, params: Params) -> Params:
        return {"canceled": await job.backend.flow_cancel(_optional_text(params, "run_id"))}

    async def _flow_is_running(self, job: JobBinding, params: Params) -> Params:
        excluded = _run_id_list(params)
        running = await job.backend.flow_is_running(
            _optional_text(params, "flow"), _optional_text(params, "run_id"), excluded
        )
        return {"running": running}

    def _emitted(self, params: Params) -> None:
        # Handled as the frame arrives (a plain function: see flowhost_worker.rpc), so an
        # attempt's emits are all in before its answer is.
        job = self.job
        if job is None:
            logger.warning("dropped an emit from worker %s: no job is running", self.id)
            return
        job.emitted(params)

    def _broken_frame(self, error: ProtocolError) -> None:
        job = self.job
        if job is not None:
            job.spoil(f"the child sent a frame the host could not read ({error.message})")

    def _log(self, params: Params) -> None:
        job = self.job
        level, message, fields = params.get("level"), params.get("message"), params.get("fields")
        if job is None or level not in LEVELS or not isinstance(message, str):
            logger.debug("dropped a log notification from worker %s", self.id)
            return
        if not job.admit_log():
            return
        job.backend.log(level, message, fields if isinstance(fields, dict) else {})

    def _progress(self, params: Params) -> None:
        job, value = self.job, params.get("value")
        if job is None or isinstance(value, bool) or not isinstance(value, int | float):
            return
        if not job.admit_log():
            return
        message = params.get("message")
        job.backend.progress(
            min(1.0, max(0.0, float(value))), message if isinstance(message, str) else None
        )


def _text(params: Params, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _run_id_list(params: Params) -> list[str]:
    excluded = params.get("exclude_run_ids") or []
    if not isinstance(excluded, list) or not all(isinstance(i, str) for i in excluded):
        raise ValueError("exclude_run_ids must be a list of run ids")
    return excluded


def _optional_text(params: Params, name: str) -> str | None:
    return None if params.get(name) is None else _text(params, name)


def _state_key(params: Params) -> str:
    key = _text(params, "key")
    if len(key) > MAX_STATE_KEY:
        raise ValueError(f"state keys are at most {MAX_STATE_KEY} characters")
    return key
