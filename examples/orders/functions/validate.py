"""Entry step: check the order and remember it for the later steps."""

from flowhost_worker import step


@step(flow="orders", name="validate", entry=True, emits=["order.validated"])
async def validate(order: dict, ctx) -> dict:
    missing = [field for field in ("id", "customer", "items") if not order.get(field)]
    if missing:
        # Not worth retrying: the input will not get better.
        raise ValueError(f"order is missing {', '.join(missing)}")
    total = sum(item["price"] * item["quantity"] for item in order["items"])
    await ctx.state.set("order", order)
    ctx.logger.info("validated", order_id=order["id"], total=total)
    await ctx.emit("order.validated", {"id": order["id"], "total": total})
    return {"ok": True, "total": total}
