"""Reserve the items in the warehouse; its API is flaky and fails the first call."""

from flowhost_worker import step


@step(
    flow="orders",
    name="reserve",
    subscribes=["order.validated"],
    emits=["order.reserved"],
    attempts=3,
    backoff=0.2,
)
async def reserve(events: dict, ctx) -> dict:
    order = await ctx.state.get("order")
    if ctx.attempt == 1:
        # Simulates a transient warehouse error: the retry with backoff succeeds.
        raise ConnectionError("warehouse API timed out")
    skus = [item["sku"] for item in order["items"]]
    ctx.logger.info("reserved", order_id=order["id"], skus=skus, attempt=ctx.attempt)
    await ctx.emit("order.reserved", {"skus": skus})
    return {"reserved": skus}
