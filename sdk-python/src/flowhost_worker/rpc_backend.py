"""`RunContext` in a child process: every context call becomes a protocol call to the host.

`log`, `progress`, `heartbeat` and `emit` are notifications the step does not wait for; they go
through one ordered queue, and a request, like the job's answer, waits for the queue to empty
first, so the host sees a job's messages in the order the step produced them, and every emit of
an attempt before its answer. Logs and progress beyond the queue's bound are dropped (and
counted); an emit is never dropped: it waits for room instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from flowhost_worker.context import JSONValue
from flowhost_worker.errors import ActionError, JobEndedError, WorkerError
from flowhost_worker.json_data import check_json, json_problem
from flowhost_worker.protocol import ErrorCode, Notification, encode_message
from flowhost_worker.rpc import Peer, RemoteError

logger = logging.getLogger(__name__)

# Notifications waiting for the socket. A step that logs faster than the host reads loses the
# excess (and the host is told how many), rather than growing the child without bound.
MAX_QUEUED_NOTIFICATIONS = 10_000


class Notifier:
    """Sends notifications in the order they were queued, without making the caller wait."""

    def __init__(self, peer: Peer) -> None:
        self._peer = peer
        # Encoded frames: a notification that cannot be encoded fails where it was made.
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._dropped = 0
        self._sender: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_queued(), name="flowhost-notifier")

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    def put(self, method: str, params: dict[str, Any]) -> None:
        """Queue a notification that may be dropped (a log line, progress) when the queue is
        full; one that cannot be encoded is dropped too: it must never fail the step."""
        if self._queue.qsize() >= MAX_QUEUED_NOTIFICATIONS:
            self._dropped += 1
            return
        try:
            frame = encode_message(Notification(method, params))
        except Exception:
            logger.exception("a %r notification cannot be encoded", method)
            self._dropped += 1
            return
        self._queue.put_nowait(frame)

    async def put_reliably(self, frame: bytes) -> None:
        """Queue a frame that must not be dropped (an emit): with the queue full, wait until
        the host has taken what is queued (a slow host slows the step, it loses nothing)."""
        while self._queue.qsize() >= MAX_QUEUED_NOTIFICATIONS:
            await self.flush()
        self._queue.put_nowait(frame)

    async def flush(self) -> None:
        """Wait until everything queued so far has been handed to the transport."""
        await self._queue.join()

    async def _send_queued(self) -> None:
        while True:
            frame = await self._queue.get()
            try:
                await self._peer.send_frame(frame)
                if self._dropped and self._queue.empty():
                    await self._peer.notify("log", self._dropped_warning())
            except ConnectionError:
                pass  # the host is gone; the runtime's watchdog ends the process
            except Exception:
                logger.exception("sending a notification failed")
            finally:
                self._queue.task_done()

    def _dropped_warning(self) -> dict[str, Any]:
        count, self._dropped = self._dropped, 0
        return {
            "level": "warning",
            "message": f"{count} log/progress messages were dropped: the step sent them faster "
            "than the host could take them",
            "fields": {"dropped": count},
        }


class RpcBackend:
    """`ContextBackend` for one job, over the child's connection to the host.

    `emits` are the names the step declares, as the host sent them with `execute`; None (an
    older host) sends each emit as a request and waits for the host's answer."""

    def __init__(
        self,
        peer: Peer,
        notifier: Notifier,
        *,
        step: str = "",
        emits: tuple[str, ...] | None = None,
    ) -> None:
        self._peer = peer
        self._notifier = notifier
        self._step = step
        self._emits = emits
        self._ended = False

    def end(self) -> None:
        """The job has been answered: calls from tasks the step left behind now fail here."""
        self._ended = True

    async def state_get(self, key: str) -> tuple[bool, JSONValue]:
        result = await self._call("state.get", {"key": key})
        return bool(_field(result, "found", "state.get")), result.get("value")

    async def state_set(self, key: str, value: JSONValue) -> None:
        check_json(value, f"state value {key!r}")
        await self._call("state.set", {"key": key, "value": value})

    async def state_delete(self, key: str) -> bool:
        result = await self._call("state.delete", {"key": key})
        return bool(_field(result, "deleted", "state.delete"))

    async def state_list(self) -> list[str]:
        keys = _field(await self._call("state.list", {}), "keys", "state.list")
        return [str(key) for key in keys]

    async def emit(self, name: str, payload: JSONValue) -> None:
        check_json(payload, f"the payload of {name!r}")
        if self._emits is None:
            await self._call("emit", {"name": name, "payload": payload})
            return
        # Everything the host would refuse is refused here, where the step can still be told:
        # the host's own refusal can only fail the attempt once it has answered.
        self._check_running()
        if name not in self._emits:
            declared = ", ".join(self._emits) or "nothing"
            raise ValueError(f"step {self._step!r} emits {name!r} but declares emits=[{declared}]")
        try:
            frame = encode_message(Notification("emit", {"name": name, "payload": payload}))
        except Exception as exc:  # a string msgpack cannot encode (a lone surrogate), say
            raise ValueError(f"the payload of {name!r} cannot be sent: {exc}") from exc
        if len(frame) > self._peer.max_frame:
            raise ValueError(
                f"the payload of {name!r} is too large: {len(frame)} bytes encoded, the host "
                f"takes frames of at most {self._peer.max_frame}"
            )
        await self._notifier.put_reliably(frame)

    async def flow_start(self, flow: str, input: JSONValue, options: dict[str, JSONValue]) -> str:
        check_json(input, f"the input of flow {flow!r}")
        params: dict[str, Any] = {"flow": flow, "input": input, **options}
        return str(_field(await self._call("flow.start", params), "run_id", "flow.start"))

    async def flow_running(
        self, flow: str | None, exclude_run_ids: list[str]
    ) -> list[dict[str, JSONValue]]:
        params: dict[str, Any] = {"exclude_run_ids": exclude_run_ids}
        if flow is not None:
            params["flow"] = flow
        runs = _field(await self._call("flow.running", params), "runs", "flow.running")
        if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
            raise WorkerError("the host answered flow.running without a list of runs")
        return runs

    async def flow_stats(self, flow: str | None) -> dict[str, JSONValue] | None:
        params: dict[str, Any] = {} if flow is None else {"flow": flow}
        stats = _field(await self._call("flow.stats", params), "stats", "flow.stats")
        if stats is not None and not isinstance(stats, dict):
            raise WorkerError("the host answered flow.stats without a map or null")
        return stats

    async def flow_cancel(self, run_id: str | None) -> bool:
        params = {} if run_id is None else {"run_id": run_id}
        return bool(_field(await self._call("flow.cancel", params), "canceled", "flow.cancel"))

    async def flow_is_running(
        self, flow: str | None, run_id: str | None, exclude_run_ids: list[str]
    ) -> bool:
        params: dict[str, Any] = {"exclude_run_ids": exclude_run_ids}
        if flow is not None:
            params["flow"] = flow
        if run_id is not None:
            params["run_id"] = run_id
        result = await self._call("flow.is_running", params)
        return bool(_field(result, "running", "flow.is_running"))

    async def publish_mqtt(self, params: dict[str, JSONValue]) -> dict[str, JSONValue]:
        return _map(await self._call("publish.mqtt", params), "publish.mqtt")

    async def publish_amqp(self, params: dict[str, JSONValue]) -> dict[str, JSONValue]:
        return _map(await self._call("publish.amqp", params), "publish.amqp")

    async def http_request(self, params: dict[str, JSONValue]) -> dict[str, JSONValue]:
        return _map(await self._call("http.request", params), "http.request")

    def log(self, level: str, message: str, fields: dict[str, JSONValue]) -> None:
        self._check_running()
        if json_problem(fields) is not None:
            # A log line must never fail the step over a field it cannot send.
            fields = {key: _loggable(value) for key, value in fields.items()}
        self._notifier.put("log", {"level": level, "message": message, "fields": fields})

    def heartbeat(self) -> None:
        self._check_running()
        self._notifier.put("heartbeat", {})

    def progress(self, value: float, message: str | None) -> None:
        self._check_running()
        self._notifier.put("progress", {"value": value, "message": message})

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        self._check_running()
        await self._notifier.flush()
        try:
            return await self._peer.call(method, params)
        except RemoteError as exc:
            if exc.code == ErrorCode.INVALID_PARAMS:
                raise ValueError(f"{method} refused: {exc.message}") from exc
            if exc.code == ErrorCode.ACTION_FAILED:
                raise ActionError(exc.message) from None
            if exc.code == ErrorCode.NO_JOB_RUNNING:
                raise JobEndedError(f"{method} refused: the job has ended") from exc
            raise

    def _check_running(self) -> None:
        if self._ended:
            raise JobEndedError(
                "the job has ended: a task the step started outlived it and cannot use ctx"
            )


def _field(result: Any, key: str, method: str) -> Any:
    if not isinstance(result, dict) or key not in result:
        raise WorkerError(f"the host answered {method} without {key!r}")
    return result[key]


def _map(result: Any, method: str) -> dict[str, JSONValue]:
    if not isinstance(result, dict):
        raise WorkerError(f"the host answered {method} without a map")
    return result


def _loggable(value: Any) -> JSONValue:
    return value if json_problem(value) is None else repr(value)
