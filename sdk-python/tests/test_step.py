"""The Python SDK: @step validation, the canonical config, RetryRequested, the context API."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from flowhost_worker import Backoff, RetryRequested, RunContext, StepConfigError, step, step_config
from flowhost_worker.testing import MemoryBackend


def test_step_records_a_canonical_config() -> None:
    @step(
        flow="orders",
        subscribes="order.validated",
        emits=["order.charged"],
        attempts=3,
        backoff={"type": "exponential", "delay": 0.5, "max_delay": 4},
        timeout=30,
    )
    async def charge(events: dict[str, Any], ctx: RunContext) -> None: ...

    config = step_config(charge)
    assert config is not None
    assert config.to_dict() == {
        "flow": "orders",
        "name": "charge",
        "entry": False,
        "subscribes": ["order.validated"],
        "emits": ["order.charged"],
        "attempts": 3,
        "backoff": {"type": "exponential", "delayMs": 500, "maxDelayMs": 4000},
        "timeoutMs": 30000,
        "isolation": "process",
        "reuse": 1,
        "preload": [],
        "memoryMb": None,
        "cpuMs": None,
        "concurrency": None,
        "maxRuns": None,
        "concurrencyKey": None,
        "keyConcurrency": None,
        "priority": None,
        "env": [],
        "awaitBefore": None,
        "awaitAfter": None,
        "triggers": None,
    }


def test_process_options_reach_the_canonical_config_in_order() -> None:
    @step(
        flow="reports",
        entry=True,
        timeout=60,
        isolation="process",
        reuse=20,
        preload=["pandas", "numpy.linalg", "pandas"],
        memory=512,
        cpu=1.5,
        concurrency=4,
        env="REPORTS_TOKEN",
    )
    async def render(data: Any, ctx: RunContext) -> None: ...

    config = step_config(render)
    assert config is not None
    canonical = config.to_dict()
    assert list(canonical)[list(canonical).index("timeoutMs") :] == [
        "timeoutMs", "isolation", "reuse", "preload", "memoryMb", "cpuMs", "concurrency",
        "maxRuns", "concurrencyKey", "keyConcurrency", "priority", "env",
        "awaitBefore", "awaitAfter", "triggers",
    ]  # fmt: skip
    assert {key: canonical[key] for key in list(canonical)[8:]} == {
        "isolation": "process",
        "reuse": 20,
        "preload": ["pandas", "numpy.linalg"],
        "memoryMb": 512,
        "cpuMs": 1500,
        "concurrency": 4,
        "maxRuns": None,
        "concurrencyKey": None,
        "keyConcurrency": None,
        "priority": None,
        "env": ["REPORTS_TOKEN"],
        "awaitBefore": None,
        "awaitAfter": None,
        "triggers": None,
    }
    assert step_config(step(flow="f", entry=True, isolation="inprocess")(render)) is not None


def test_flow_control_reaches_the_canonical_config_in_order() -> None:
    @step(
        flow="mail",
        entry=True,
        concurrency=2,
        max_runs=10,
        concurrency_key="/tenant/id",
        key_concurrency=3,
        priority=-5,
    )
    async def send(data: Any, ctx: RunContext) -> None: ...

    config = step_config(send)
    assert config is not None
    canonical = config.to_dict()
    keys = list(canonical)
    assert keys[keys.index("concurrency") : keys.index("env") + 1] == [
        "concurrency", "maxRuns", "concurrencyKey", "keyConcurrency", "priority", "env"
    ]  # fmt: skip
    assert (canonical["maxRuns"], canonical["concurrencyKey"]) == (10, "/tenant/id")
    assert (canonical["keyConcurrency"], canonical["priority"]) == (3, -5)
    # Fairness between keys without a per-key limit, under max_runs.
    assert step(flow="m", entry=True, max_runs=2, concurrency_key="")(send) is send


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"flow": "f", "subscribes": "x", "max_runs": 2}, "max_runs"),
        ({"flow": "f", "subscribes": "x", "priority": 1}, "priority"),
        ({"flow": "f", "entry": True, "max_runs": 0}, "max_runs"),
        ({"flow": "f", "entry": True, "key_concurrency": 2}, "key_concurrency"),
        ({"flow": "f", "entry": True, "concurrency_key": "/t"}, "concurrency_key"),
        ({"flow": "f", "entry": True, "concurrency_key": "t", "max_runs": 1}, "concurrency_key"),
        ({"flow": "f", "entry": True, "concurrency_key": "/a~2", "max_runs": 1}, "concurrency_key"),
        ({"flow": "f", "entry": True, "priority": 1001}, "priority"),
        ({"flow": "f", "entry": True, "priority": 1.0}, "priority"),
        ({"flow": "f", "entry": True, "priority": True}, "priority"),
        ({"flow": ""}, "flow"),
        ({"flow": "has space"}, "flow"),
        ({"flow": "f", "entry": True, "subscribes": ["x"]}, "subscribes"),
        ({"flow": "f"}, "subscribes"),
        ({"flow": "f", "entry": True, "attempts": 0}, "attempts"),
        ({"flow": "f", "entry": True, "attempts": True}, "attempts"),
        ({"flow": "f", "entry": True, "backoff": -1}, "backoff"),
        ({"flow": "f", "entry": True, "backoff": {"kind": "x"}}, "backoff"),
        ({"flow": "f", "entry": True, "timeout": 0}, "timeout"),
        ({"flow": "f", "entry": True, "emits": [1]}, "emits"),
        ({"flow": "f", "entry": True, "isolation": "thread"}, "isolation"),
        ({"flow": "f", "entry": True, "reuse": 0}, "reuse"),
        ({"flow": "f", "entry": True, "reuse": 2.0}, "reuse"),
        ({"flow": "f", "entry": True, "reuse": True}, "reuse"),
        ({"flow": "f", "entry": True, "preload": ["numpy-2"]}, "preload"),
        ({"flow": "f", "entry": True, "preload": ["pkg..sub"]}, "preload"),
        ({"flow": "f", "entry": True, "preload": [3]}, "preload"),
        ({"flow": "f", "entry": True, "memory": 0}, "memory"),
        ({"flow": "f", "entry": True, "memory": 1.5}, "memory"),
        ({"flow": "f", "entry": True, "cpu": 0}, "cpu"),
        ({"flow": "f", "entry": True, "cpu": float("inf")}, "cpu"),
        ({"flow": "f", "entry": True, "cpu": "1s"}, "cpu"),
        ({"flow": "f", "entry": True, "concurrency": -1}, "concurrency"),
        ({"flow": "f", "entry": True, "env": ["1ST"]}, "env"),
        ({"flow": "f", "entry": True, "env": ["A-B"]}, "env"),
        ({"flow": "f", "entry": True, "env": "HAS SPACE"}, "env"),
    ],
)
def test_bad_declarations_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(StepConfigError) as caught:

        @step(**kwargs)
        async def handler(data: Any, ctx: Any) -> None: ...

    assert caught.value.field == field


def test_handlers_must_be_async_with_two_parameters() -> None:
    with pytest.raises(StepConfigError, match="async function"):

        @step(flow="f", entry=True)
        def sync(data: Any, ctx: Any) -> None: ...

    with pytest.raises(StepConfigError, match="exactly two parameters"):

        @step(flow="f", entry=True)
        async def one(data: Any) -> None: ...


def test_backoff_delays() -> None:
    exponential = Backoff("exponential", delay=1, max_delay=5)
    assert [exponential.delay_before(n) for n in (2, 3, 4, 5, 6)] == [1, 2, 4, 5, 5]
    fixed = Backoff.parse(0.25)
    assert [fixed.delay_before(n) for n in (2, 3)] == [0.25, 0.25]


def test_retry_requested_crosses_process_boundaries() -> None:
    original = RetryRequested(2.5, "rate limited")
    for copy in (
        pickle.loads(pickle.dumps(original)),
        RetryRequested.from_dict(original.to_dict()),
    ):
        assert (copy.delay, copy.reason) == (2.5, "rate limited")
    with pytest.raises(ValueError):
        RetryRequested(-1)
    with pytest.raises(TypeError):
        RetryRequested("soon")  # type: ignore[arg-type]


async def test_the_context_delegates_to_its_backend() -> None:
    backend = MemoryBackend()
    ctx = RunContext(backend, run_id="r1", flow_name="f", step_name="s", attempt=2, max_attempts=3)
    await ctx.state.set("k", {"v": 1})
    assert await ctx.state.get("k") == {"v": 1}
    assert await ctx.state.get("missing", "default") == "default"
    await ctx.state.delete("k")
    assert await ctx.state.get("k") is None
    ctx.logger.info("hello", n=1)
    ctx.logger.warn("careful")
    await ctx.emit("done", [1])
    assert backend.logs == [("info", "hello", {"n": 1}), ("warning", "careful", {})]
    assert backend.emitted == [("done", [1])]
    assert ctx.idempotency_key == "r1:s"
    with pytest.raises(ValueError):
        await ctx.state.set("", 1)
    with pytest.raises(ValueError):
        ctx.logger.log("loud", "x")
