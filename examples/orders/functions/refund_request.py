"""Entry of the `refunds` flow: a person asks for a refund through the manual trigger
`refund.request`, whose JSON Schema is the form the dashboard shows for it."""

from flowhost_worker import step

REQUEST_SCHEMA = {
    "type": "object",
    "required": ["order_id", "amount", "reason"],
    "properties": {
        "order_id": {"type": "string", "title": "Order", "description": "e.g. A-1001"},
        "amount": {"type": "number", "minimum": 0.01, "title": "Amount"},
        "reason": {"type": "string", "enum": ["damaged", "late", "not delivered", "other"]},
        "note": {"type": "string", "title": "Note for the approver"},
        "notify_customer": {"type": "boolean", "default": True},
    },
}


@step(
    flow="refunds",
    name="request",
    entry=True,
    emits=["refund.requested"],
    triggers={
        "define": {
            "name": "refund.request",
            "type": "manual",
            "display_name": "Request a refund",
            "description": "Starts a refund; someone approves it before it is paid.",
            "config": {"schema": REQUEST_SCHEMA},
        },
        "subscribe": ["refund.request"],
    },
)
async def request(refund: dict, ctx) -> dict:
    await ctx.state.set("refund", refund)
    ctx.logger.info("refund requested", order_id=refund["order_id"], amount=refund["amount"])
    await ctx.emit("refund.requested", {"order_id": refund["order_id"]})
    return {"requested": True}
