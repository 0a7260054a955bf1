"""flowhost_worker.testing: a step function called directly, its effects asserted in memory."""

from __future__ import annotations

from pathlib import Path

from flowhost_worker.loader import load_module
from flowhost_worker.testing import MemoryBackend, context_for

ORDERS = Path(__file__).resolve().parents[2] / "examples" / "orders" / "functions"


async def test_the_orders_validate_step_runs_without_a_host() -> None:
    validate = load_module(ORDERS, ORDERS / "validate.py").validate
    order = {"id": "A-1", "customer": "c", "items": [{"sku": "X", "price": 2.5, "quantity": 4}]}
    backend = MemoryBackend()
    result = await validate(order, context_for(backend, flow="orders", step="validate"))
    assert result == {"ok": True, "total": 10.0}
    assert backend.state == {"order": order}
    assert backend.emitted == [("order.validated", {"id": "A-1", "total": 10.0})]
    assert backend.logs == [("info", "validated", {"order_id": "A-1", "total": 10.0})]


async def test_flow_start_with_a_key_starts_one_run() -> None:
    backend = MemoryBackend()
    ctx = context_for(backend)
    first = await ctx.flow.start("billing", {"n": 1}, idempotency_key="k")
    again = await ctx.flow.start("billing", {"n": 1}, idempotency_key="k")
    assert first == again and backend.started == [("billing", {"n": 1}, {"idempotency_key": "k"})]


async def test_dedupe_and_debounce_keys_return_the_first_run_and_running_is_what_was_set() -> None:
    backend = MemoryBackend()
    ctx = context_for(backend, flow="orders")
    first = await ctx.flow.start("mail", {"n": 1}, dedupe_key="d", dedupe_window=60)
    assert await ctx.flow.start("mail", {"n": 2}, dedupe_key="d", dedupe_window=60) == first
    other = await ctx.flow.start("mail", {"n": 3}, debounce_key="d", debounce_window=1)
    assert other != first  # one start key per start: "d" as a debounce key is another key
    assert [options for _flow, _input, options in backend.started] == [
        {"dedupe_key": "d", "dedupe_window": 60.0},
        {"debounce_key": "d", "debounce_window": 1.0},
    ]
    backend.running_runs = [{"run_id": "r1", "flow": "mail"}, {"run_id": "r2", "flow": "x"}]
    backend.flow_statistics = {"mail": {"flow": "mail", "total": 2}}
    assert await ctx.flow.running("mail") == [{"run_id": "r1", "flow": "mail"}]
    assert await ctx.flow.stats("mail") == {"flow": "mail", "total": 2}
    assert await ctx.flow.stats("x") is None


async def test_state_delete_tells_whether_the_key_was_there() -> None:
    ctx = context_for(MemoryBackend(state={"k": None}))
    assert await ctx.state.delete("k") is True
    assert await ctx.state.delete("k") is False
