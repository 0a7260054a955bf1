"""The context API over a fake backend: the new calls, their local checks, and their params."""

from __future__ import annotations

from typing import Any

import pytest

from flowhost_worker import FlowControl, RunContext
from flowhost_worker.json_data import check_json, json_problem
from flowhost_worker.testing import MemoryBackend


class RecordingBackend(MemoryBackend):
    """The in-memory backend, also recording every call that is not about state."""

    def __init__(self) -> None:
        super().__init__(state={"b": 1, "a": 2})
        self.calls: list[tuple[Any, ...]] = []

    async def emit(self, name: str, payload: Any) -> None:
        self.calls.append(("emit", name, payload))

    async def flow_start(self, flow: str, input: Any, options: dict[str, Any]) -> str:
        self.calls.append(("flow_start", flow, input, options))
        return "run-2"

    async def flow_running(self, flow: str | None, exclude_run_ids: list[str]) -> list[Any]:
        self.calls.append(("flow_running", flow, exclude_run_ids))
        return [{"run_id": "r7", "flow": flow or "f", "status": "running"}]

    async def flow_stats(self, flow: str | None) -> dict[str, Any] | None:
        self.calls.append(("flow_stats", flow))
        return None if flow == "never" else {"flow": flow or "f", "total": 3}

    async def flow_cancel(self, run_id: str | None) -> bool:
        self.calls.append(("flow_cancel", run_id))
        return True

    async def flow_is_running(
        self, flow: str | None, run_id: str | None, exclude_run_ids: list[str]
    ) -> bool:
        self.calls.append(("flow_is_running", flow, run_id, exclude_run_ids))
        return False

    def log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        self.calls.append(("log", level, message, fields))

    def heartbeat(self) -> None:
        self.calls.append(("heartbeat",))

    def progress(self, value: float, message: str | None) -> None:
        self.calls.append(("progress", value, message))


def context(backend: RecordingBackend, **kw: Any) -> RunContext:
    return RunContext(
        backend, run_id="r1", flow_name="f", step_name="s", attempt=1, max_attempts=1, **kw
    )


async def test_flow_control_passes_its_options_through() -> None:
    backend = RecordingBackend()
    ctx = context(backend)
    assert isinstance(ctx.flow, FlowControl)
    assert await ctx.flow.start("billing", {"id": 1}, idempotency_key="k") == "run-2"
    assert await ctx.flow.start("audit") == "run-2"
    assert await ctx.flow.cancel() is True
    assert await ctx.flow.cancel("r9") is True
    assert await ctx.flow.is_running() is False
    assert await ctx.flow.is_running("billing", exclude_run_ids=("r3", "r4")) is False
    assert await ctx.flow.is_running(run_id="r5") is False
    assert backend.calls == [
        ("flow_start", "billing", {"id": 1}, {"idempotency_key": "k"}),
        ("flow_start", "audit", None, {}),
        ("flow_cancel", None),
        ("flow_cancel", "r9"),
        ("flow_is_running", None, None, []),
        ("flow_is_running", "billing", None, ["r3", "r4"]),
        ("flow_is_running", None, "r5", []),
    ]


async def test_flow_start_options_running_and_stats_reach_the_backend() -> None:
    backend = RecordingBackend()
    ctx = context(backend)
    await ctx.flow.start("mail", {"to": "a"}, priority=5, delay=1.5)
    await ctx.flow.start("mail", dedupe_key="d", dedupe_window=60)
    await ctx.flow.start("mail", debounce_key="b", debounce_window=0.5, priority=-3)
    assert await ctx.flow.running() == [{"run_id": "r7", "flow": "f", "status": "running"}]
    assert (await ctx.flow.running("mail", exclude=["r3"]))[0]["flow"] == "mail"
    assert await ctx.flow.stats() == {"flow": "f", "total": 3}
    assert await ctx.flow.stats("never") is None
    assert backend.calls == [
        ("flow_start", "mail", {"to": "a"}, {"priority": 5, "delay": 1.5}),
        ("flow_start", "mail", None, {"dedupe_key": "d", "dedupe_window": 60.0}),
        (
            "flow_start",
            "mail",
            None,
            {"debounce_key": "b", "priority": -3, "debounce_window": 0.5},
        ),
        ("flow_running", None, []),
        ("flow_running", "mail", ["r3"]),
        ("flow_stats", None),
        ("flow_stats", "never"),
    ]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda ctx: ctx.flow.start("f", priority=1.5), TypeError),
        (lambda ctx: ctx.flow.start("f", priority=True), TypeError),
        (lambda ctx: ctx.flow.start("f", delay=-1), ValueError),
        (lambda ctx: ctx.flow.start("f", delay="soon"), TypeError),
        (lambda ctx: ctx.flow.start("f", dedupe_key="k", dedupe_window=float("inf")), ValueError),
        (lambda ctx: ctx.flow.start("f", debounce_key=""), ValueError),
        (lambda ctx: ctx.flow.running(exclude="r1"), TypeError),
        (lambda ctx: ctx.flow.running(""), ValueError),
        (lambda ctx: ctx.flow.stats(""), ValueError),
        (lambda ctx: ctx.flow.start(""), ValueError),
        (lambda ctx: ctx.flow.start("f", idempotency_key=""), ValueError),
        (lambda ctx: ctx.flow.cancel(7), ValueError),
        (lambda ctx: ctx.flow.is_running(run_id=""), ValueError),
        (lambda ctx: ctx.flow.is_running(exclude_run_ids="r1"), TypeError),
        (lambda ctx: ctx.flow.is_running(exclude_run_ids=[None]), ValueError),
        (lambda ctx: ctx.state.get("x" * 257), ValueError),
        (lambda ctx: ctx.state.set("", 1), ValueError),
        (lambda ctx: ctx.state.delete(3), ValueError),
    ],
)
async def test_bad_arguments_fail_locally(call: Any, error: type[Exception]) -> None:
    backend = RecordingBackend()
    with pytest.raises(error):
        await call(context(backend))
    assert backend.calls == []


async def test_state_list_heartbeat_progress_and_key_limits() -> None:
    backend = RecordingBackend()
    ctx = context(backend)
    assert await ctx.state.list() == ["a", "b"]
    await ctx.state.set("k" * 256, True)  # the longest key allowed
    ctx.heartbeat()
    ctx.progress(0)
    ctx.progress(1, "done")
    for bad, error in ((1.01, ValueError), (-0.1, ValueError), (float("nan"), ValueError),
                       (True, TypeError), ("0.5", TypeError)):  # fmt: skip
        with pytest.raises(error):
            ctx.progress(bad)
    with pytest.raises(TypeError):
        ctx.progress(0.5, 3)  # type: ignore[arg-type]
    assert backend.calls == [("heartbeat",), ("progress", 0.0, None), ("progress", 1.0, "done")]


def test_idempotency_key_comes_from_the_runtime_or_defaults() -> None:
    backend = RecordingBackend()
    assert context(backend).idempotency_key == "r1:s"
    assert context(backend, idempotency_key="host-key").idempotency_key == "host-key"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, 2.5, "x", None, True]}, None),
        ({"a": {1, 2}}, "v['a'] is a set, which is not JSON data"),
        ({1: "x"}, "v has a key 1 that is not a string"),
        ([float("nan")], "v[0] is nan, which JSON cannot hold"),
        ("a\x00b", "v contains a NUL character"),
        (2**70, "v is an integer too large to send (71 bits)"),
        (b"raw", "v is a bytes, which is not JSON data"),
    ],
)
def test_json_data_problems_name_the_place(value: Any, problem: str | None) -> None:
    assert json_problem(value, "v") == problem
    if problem is not None:
        with pytest.raises(TypeError, match="v"):
            check_json(value, "v")


def test_deep_nesting_is_refused_before_the_codec_does() -> None:
    value: Any = []
    for _ in range(600):
        value = [value]
    assert "nested more than" in (json_problem(value) or "")
