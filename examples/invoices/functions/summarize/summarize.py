"""Entry step: total an invoice and phrase its amounts for people.

It runs with this directory's own `.venv` (made by `make install` from requirements.txt), which
has `humanize`: the host's environment does not, and never imports this file.
"""

import humanize

from flowhost_worker import step


@step(flow="invoices", name="summarize", entry=True, emits=["invoice.summarized"], timeout=10)
async def summarize(invoice: dict, ctx) -> dict:
    cents = sum(line["cents"] * line.get("quantity", 1) for line in invoice["lines"])
    summary = {
        "customer": invoice["customer"],
        "total_cents": cents,
        "total_text": f"{humanize.intcomma(cents // 100)}.{cents % 100:02d} {invoice['currency']}",
        "lines_text": humanize.apnumber(len(invoice["lines"])),
        "due_in_days": invoice["due_in_days"],
    }
    ctx.logger.info("summarized", customer=invoice["customer"], total_cents=cents)
    await ctx.emit("invoice.summarized", summary)
    return summary
