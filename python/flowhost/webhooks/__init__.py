"""Webhook authentication: provider signatures and the simpler presets (docs/webhooks.md).

- `verify(scheme, *, secret, headers, body, ...)` checks one signed request against a provider's
  scheme: ``github``, ``stripe``, ``slack``, ``standard-webhooks``, ``shopify``, ``twilio`` or
  the configurable ``hmac-sha256`` (`HmacOptions`).
- `WebhookAuth.from_config(trigger_auth)` validates a webhook trigger's ``auth`` config (any of
  those, or ``bearer``, ``basic``, ``api-key``, ``none``, with an optional IP allow-list) and
  `WebhookAuth.check(WebhookRequest(...))` checks a request against it.
- `delivery_id(scheme, headers, payload)` is the provider's id of a delivery, for dedupe.

Both raise `flowhost.errors.WebhookVerificationError` with a `reason` code; neither logs, and
no message carries a secret or a signature.
"""

from flowhost.errors import WebhookVerificationError
from flowhost.webhooks.auth import AUTH_SCHEMES, WebhookAuth, redact
from flowhost.webhooks.delivery import delivery_id
from flowhost.webhooks.generic_hmac import HmacOptions
from flowhost.webhooks.request import HeaderView, WebhookRequest
from flowhost.webhooks.signatures import SCHEMES, verify

__all__ = [
    "AUTH_SCHEMES",
    "SCHEMES",
    "HeaderView",
    "HmacOptions",
    "WebhookAuth",
    "WebhookRequest",
    "WebhookVerificationError",
    "delivery_id",
    "redact",
    "verify",
]
