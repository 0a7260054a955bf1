"""Slack: ``X-Slack-Signature: v0=<hex>`` and ``X-Slack-Request-Timestamp: <unix seconds>``.

The signature is hex HMAC-SHA256, keyed with the app's signing secret, of the base string
``"v0:<timestamp>:" + body`` (the timestamp exactly as sent). A timestamp more than `tolerance`
seconds away from now, in the past or the future, fails (Slack's library: 5 minutes). Parsing
and order follow `slack_sdk` ``SignatureVerifier.is_valid``.
"""

from __future__ import annotations

from hashlib import sha256
from hmac import new as new_hmac

from flowhost.webhooks.signing import (
    SignedRequest,
    any_equal,
    header_bytes,
    refuse,
    require_text,
)

SIGNATURE = "X-Slack-Signature"
TIMESTAMP = "X-Slack-Request-Timestamp"


def verify(request: SignedRequest, keys: tuple[bytes, ...]) -> None:
    timestamp = request.headers.get(TIMESTAMP)
    signature = request.headers.get(SIGNATURE)
    if timestamp is None:
        raise refuse("missing_timestamp", f"the {TIMESTAMP} header is missing")
    if signature is None:
        raise refuse("missing_signature", f"the {SIGNATURE} header is missing")
    try:
        seconds = int(timestamp)
    except ValueError:
        raise refuse("malformed_header", f"the {TIMESTAMP} header is not an integer") from None
    if request.tolerance is not None and abs(request.now - seconds) > request.tolerance:
        raise refuse(
            "timestamp_out_of_tolerance",
            f"the {TIMESTAMP} is more than {request.tolerance:g} seconds from now",
        )
    require_text(request.body, "Slack")
    base = b"v0:" + header_bytes(timestamp, TIMESTAMP) + b":" + request.body
    expected = [b"v0=" + new_hmac(key, base, sha256).hexdigest().encode() for key in keys]
    if not any_equal(expected, header_bytes(signature, SIGNATURE)):
        raise refuse("bad_signature", f"the {SIGNATURE} header does not match the body")
