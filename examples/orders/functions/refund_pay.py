"""Pay a refund once a person approved it: the step waits before it runs for a call to its
approval URL (a webhook await; the dashboard's run page has a button for it)."""

from flowhost_worker import Await, step


@step(
    flow="refunds",
    name="pay",
    subscribes=["refund.requested"],
    await_before=Await.webhook(
        "POST",
        schema={
            "type": "object",
            "required": ["approved"],
            "properties": {"approved": {"type": "boolean"}, "by": {"type": "string"}},
        },
        timeout=3 * 86400,
    ),
)
async def pay(events: dict, ctx) -> dict:
    refund = await ctx.state.get("refund")
    decision = ctx.awaited.data
    if not decision["approved"]:
        ctx.logger.info("refund declined", order_id=refund["order_id"])
        return {"paid": False}
    ctx.logger.info("refund paid", order_id=refund["order_id"], amount=refund["amount"])
    return {"paid": True, "amount": refund["amount"]}
