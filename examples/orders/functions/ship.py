"""Ship once the order is both charged and reserved (an AND-join on two events)."""

from flowhost_worker import step


@step(flow="orders", name="ship", subscribes=["order.charged", "order.reserved"])
async def ship(events: dict, ctx) -> dict:
    order = await ctx.state.get("order")
    charge_id = events["order.charged"]["charge_id"]
    tracking = f"TRK-{order['id']}-{len(events['order.reserved']['skus'])}"
    await ctx.state.set("shipment", {"tracking": tracking, "charge_id": charge_id})
    ctx.logger.info("shipped", order_id=order["id"], tracking=tracking)
    return {"order_id": order["id"], "tracking": tracking, "charge_id": charge_id}
