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
    assert first == again and backend.started == [("billing", {"n": 1}, "k")]


async def test_state_delete_tells_whether_the_key_was_there() -> None:
    ctx = context_for(MemoryBackend(state={"k": None}))
    assert await ctx.state.delete("k") is True
    assert await ctx.state.delete("k") is False
