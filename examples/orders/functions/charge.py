"""Charge the customer through the payment gateway (simulated here)."""

import asyncio
import hashlib
import os

from flowhost_worker import step

# The simulated gateway's round trip; tests raise it to catch a run in the middle of a charge.
GATEWAY_LATENCY = float(os.environ.get("ORDERS_GATEWAY_LATENCY_MS", "20")) / 1000


@step(
    flow="orders",
    name="charge",
    subscribes=["order.validated"],
    emits=["order.charged"],
    attempts=3,
    backoff=0.5,
    # A child sees only the host variables its function declares (tests set this one).
    env=["ORDERS_GATEWAY_LATENCY_MS"],
)
async def charge(events: dict, ctx) -> dict:
    order = events["order.validated"]
    await asyncio.sleep(GATEWAY_LATENCY)
    # The idempotency key is the same on every attempt, so a real gateway charges once.
    charge_id = "ch_" + hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:12]
    await ctx.state.set("charge", {"id": charge_id, "amount": order["total"]})
    ctx.logger.info("charged", order_id=order["id"], charge_id=charge_id, amount=order["total"])
    await ctx.emit("order.charged", {"charge_id": charge_id})
    return {"charge_id": charge_id}
