"""Run a step function in a test, without a host: a context whose backend lives in memory.

```python
from flowhost_worker.testing import MemoryBackend, context_for

async def test_validate():
    backend = MemoryBackend()
    result = await validate({"id": "A-1", "customer": "c", "items": [...]}, context_for(backend))
    assert backend.state["order"]["id"] == "A-1"
    assert backend.emitted == [("order.validated", {"id": "A-1", "total": 25.0})]
```

A step with an `await_before` finds the resolution in `ctx.awaited`, and a hook is a plain
function of the file:

```python
ctx = context_for(awaited=Awaited("webhook", {"approved": True}))
await book(events, ctx)
await send_approval_mail({"url": "https://..."}, context_for(hook="register"))
```
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flowhost_worker.awaits import HOOK_KINDS, Awaited
from flowhost_worker.context import RunContext
from flowhost_worker.errors import WorkerError

_ABSENT = object()


class MemoryBackend:
    """`ContextBackend` over plain attributes: what the step did is there to assert on."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = dict(state or {})
        self.logs: list[tuple[str, str, dict[str, Any]]] = []
        self.emitted: list[tuple[str, Any]] = []
        # (flow, input, options): options as passed to `ctx.flow.start` (only those given).
        self.started: list[tuple[str, Any, dict[str, Any]]] = []
        # What ctx.flow.running / ctx.flow.stats answer: set them to what a test needs.
        self.running_runs: list[dict[str, Any]] = []
        self.flow_statistics: dict[str, dict[str, Any]] = {}
        self.canceled: list[str | None] = []
        self.progress_reports: list[tuple[float, str | None]] = []
        self.heartbeats = 0
        # ctx.publish.mqtt / .amqp: ("mqtt" or "amqp", the protocol's params), payloads as bytes.
        self.published: list[tuple[str, dict[str, Any]]] = []
        # ctx.http: the protocol's params of each request, and what answers them (a function of
        # those params returning {"status", "headers", "body", "json"}; default: refused).
        self.requests: list[dict[str, Any]] = []
        self.http_handler: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._start_keys: dict[tuple[str, str, str], str] = {}

    async def state_get(self, key: str) -> tuple[bool, Any]:
        return (key in self.state, self.state.get(key))

    async def state_set(self, key: str, value: Any) -> None:
        self.state[key] = value

    async def state_delete(self, key: str) -> bool:
        return self.state.pop(key, _ABSENT) is not _ABSENT

    async def state_list(self) -> list[str]:
        return sorted(self.state)

    async def emit(self, name: str, payload: Any) -> None:
        self.emitted.append((name, payload))

    async def flow_start(self, flow: str, input: Any, options: dict[str, Any]) -> str:
        """Records the start; a start key (idempotency, dedupe, debounce) seen before for the
        flow returns its run, as the host does within the key's window (windows are not
        modelled: a key returns its run for the whole test)."""
        key = next(
            (
                (flow, name, options[name])
                for name in ("idempotency_key", "dedupe_key", "debounce_key")
                if name in options
            ),
            None,
        )
        if key is not None and key in self._start_keys:
            return self._start_keys[key]
        run_id = str(uuid.uuid4())
        if key is not None:
            self._start_keys[key] = run_id
        self.started.append((flow, input, dict(options)))
        return run_id

    async def flow_running(self, flow: str | None, exclude_run_ids: list[str]) -> list[Any]:
        return [
            run
            for run in self.running_runs
            if (flow is None or run.get("flow") == flow)
            and run.get("run_id") not in exclude_run_ids
        ]

    async def flow_stats(self, flow: str | None) -> dict[str, Any] | None:
        return self.flow_statistics.get(flow) if flow is not None else None

    async def flow_cancel(self, run_id: str | None) -> bool:
        self.canceled.append(run_id)
        return True

    async def flow_is_running(
        self, flow: str | None, run_id: str | None, exclude_run_ids: list[str]
    ) -> bool:
        return False

    async def publish_mqtt(self, params: dict[str, Any]) -> dict[str, Any]:
        self.published.append(("mqtt", params))
        return {
            "connector": params["connector"],
            "topic": params["topic"],
            "qos": params["qos"],
            "retain": params["retain"],
            "size": len(params["payload"]),
        }

    async def publish_amqp(self, params: dict[str, Any]) -> dict[str, Any]:
        self.published.append(("amqp", params))
        return {
            "connector": params["connector"],
            "exchange": params["exchange"],
            "routing_key": params["routing_key"],
            "size": len(params["body"]),
            "message_id": params.get("message_id"),
            "routed": True,
        }

    async def http_request(self, params: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(params)
        if self.http_handler is None:
            raise WorkerError(
                "ctx.http in a test: set MemoryBackend.http_handler to answer requests"
            )
        answer = self.http_handler(params)
        status = int(answer.get("status", 200))
        return {
            "status": status,
            "ok": 200 <= status < 300,
            "headers": dict(answer.get("headers", {})),
            "body": answer.get("body", ""),
            "json": answer.get("json"),
        }

    def log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        self.logs.append((level, message, fields))

    def heartbeat(self) -> None:
        self.heartbeats += 1

    def progress(self, value: float, message: str | None) -> None:
        self.progress_reports.append((value, message))


def context_for(
    backend: MemoryBackend | None = None,
    *,
    flow: str = "test",
    step: str = "step",
    attempt: int = 1,
    max_attempts: int = 1,
    run_id: str | None = None,
    awaited: Awaited | None = None,
    hook: str | None = None,
    traceparent: str | None = None,
) -> RunContext:
    """A `ctx` for calling a step function directly in a test: `awaited` is what the step's
    await_before resolved with; `hook` ("register", "resolve" or "timeout") makes it the
    context of an await hook, where `ctx.emit` is refused as it is in a real run."""
    if awaited is not None and not isinstance(awaited, Awaited):
        raise TypeError(f"awaited must be an Awaited(type, data) or None (got {awaited!r})")
    if hook is not None and hook not in HOOK_KINDS:
        raise ValueError(f"hook must be one of {', '.join(HOOK_KINDS)} or None (got {hook!r})")
    return RunContext(
        backend or MemoryBackend(),
        run_id=run_id or str(uuid.uuid4()),
        flow_name=flow,
        step_name=step,
        attempt=attempt,
        max_attempts=max_attempts,
        awaited=awaited,
        hook=hook,
        traceparent=traceparent,
    )
