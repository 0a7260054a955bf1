"""Shopify: ``X-Shopify-Hmac-Sha256: <base64>``, HMAC-SHA256 of the body keyed with the app's
client secret. No timestamp (dedupe replays by ``X-Shopify-Webhook-Id``).

The verdict is `@shopify/shopify-api` ``shopify.webhooks.validate`` (Shopify's official library;
the Python ``ShopifyAPI`` package verifies OAuth query strings only): the body must be non-empty
UTF-8 text, the header exactly the padded base64 digest, and the delivery must carry the headers
that library requires: ``X-Shopify-Topic``, ``X-Shopify-Shop-Domain``, ``X-Shopify-API-Version``
and ``X-Shopify-Webhook-Id``. Deliveries of Shopify's newer event subscriptions use the same
names without ``X-`` (``Shopify-Hmac-Sha256``...) and also require ``Shopify-Event-Id``; a
request that has ``Shopify-Hmac-Sha256`` is read that way.
"""

from __future__ import annotations

import base64
from hashlib import sha256
from hmac import new as new_hmac

from flowhost.webhooks.signing import (
    SignedRequest,
    any_equal,
    header_bytes,
    refuse,
    require_text,
)

HEADER = "X-Shopify-Hmac-Sha256"
REQUIRED = ("Topic", "Shop-Domain", "API-Version", "Webhook-Id")
EVENTS_PREFIX = "Shopify-"
WEBHOOKS_PREFIX = "X-Shopify-"


def verify(request: SignedRequest, keys: tuple[bytes, ...]) -> None:
    headers = request.headers
    required: tuple[str, ...] = REQUIRED
    prefix = WEBHOOKS_PREFIX
    if headers.present(EVENTS_PREFIX + "Hmac-Sha256") is not None:
        prefix, required = EVENTS_PREFIX, (*REQUIRED, "Event-Id")
    if not request.body:
        raise refuse("missing_body", "the body is empty; Shopify signs a non-empty body")
    signature = headers.present(prefix + "Hmac-Sha256")
    if signature is None:
        raise refuse("missing_signature", f"the {HEADER} header is missing")
    require_text(request.body, "Shopify")
    expected = [base64.b64encode(new_hmac(key, request.body, sha256).digest()) for key in keys]
    if not any_equal(expected, header_bytes(signature, prefix + "Hmac-Sha256")):
        raise refuse("bad_signature", f"the {prefix}Hmac-Sha256 header does not match the body")
    missing = [prefix + name for name in required if headers.present(prefix + name) is None]
    if missing:
        raise refuse("missing_header", f"a Shopify delivery also has {', '.join(missing)}")
