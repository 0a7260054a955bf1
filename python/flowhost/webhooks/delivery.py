"""Which id a provider gives each delivery, so a webhook route can answer a repeated delivery
(a provider's retry, a redelivery) without starting a second run.

Each id is the one the provider documents as stable across retries of one event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowhost.webhooks.request import HeaderInput, HeaderView

# scheme -> the header carrying the delivery id.
HEADERS = {
    "github": "X-GitHub-Delivery",
    "standard-webhooks": "webhook-id",
    "shopify": "X-Shopify-Event-Id",
    "twilio": "I-Twilio-Idempotency-Token",
}
# scheme -> the top-level field of the JSON body carrying the event id (no header has it).
BODY_FIELDS = {"stripe": "id", "slack": "event_id"}


def delivery_id(scheme: str, headers: HeaderInput | HeaderView, payload: Any = None) -> str | None:
    """The provider's id of this delivery, or None when the request carries none.

    `payload` is the parsed JSON body, read for Stripe (the event's ``id``) and Slack's Events
    API (``event_id``); Shopify's newer event deliveries send ``Shopify-Event-Id``.
    """
    view = HeaderView(headers)
    if scheme == "shopify":
        return view.present("X-Shopify-Event-Id") or view.present("Shopify-Event-Id")
    if scheme in HEADERS:
        return view.present(HEADERS[scheme])
    field = BODY_FIELDS.get(scheme)
    if field is not None and isinstance(payload, Mapping):
        value = payload.get(field)
        return value if isinstance(value, str) and value else None
    return None
