"""Standard Webhooks (also Svix): ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signature header is a space-separated list of ``<version>,<base64>`` entries; each ``v1``
entry is base64 HMAC-SHA256 of ``"<id>.<timestamp>." + body``, keyed with the secret's bytes
(``whsec_<base64>``: the part after the prefix, base64-decoded). Several entries let a sender sign
with an old and a new secret while rotating. The timestamp may be `tolerance` seconds in the past
or in the future (the reference library: 5 minutes). Header parsing, the timestamp rules (read as
a float, signed as its floor) and the order of the checks follow `standardwebhooks` (Python)
``Webhook.verify``, so both give the same verdict on any header.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from hmac import new as new_hmac

from flowhost.webhooks.signing import (
    SignedRequest,
    any_equal,
    header_bytes,
    refuse,
    require_text,
)

ID = "webhook-id"
TIMESTAMP = "webhook-timestamp"
SIGNATURE = "webhook-signature"


def read_timestamp(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise refuse("malformed_header", f"the {TIMESTAMP} header is not unix seconds") from None


def check_time(timestamp: datetime, request: SignedRequest) -> None:
    if request.tolerance is None:
        return
    now = datetime.fromtimestamp(request.now, tz=UTC)
    window = timedelta(seconds=request.tolerance)
    if timestamp < now - window:
        raise refuse(
            "timestamp_out_of_tolerance",
            f"the {TIMESTAMP} is more than {request.tolerance:g} seconds old",
        )
    if timestamp > now + window:
        raise refuse(
            "timestamp_out_of_tolerance",
            f"the {TIMESTAMP} is more than {request.tolerance:g} seconds in the future",
        )


def verify(request: SignedRequest, keys: tuple[bytes, ...]) -> None:
    message_id = request.headers.present(ID)
    timestamp = request.headers.present(TIMESTAMP)
    signatures = request.headers.present(SIGNATURE)
    if not signatures:
        raise refuse("missing_signature", f"the {SIGNATURE} header is missing")
    if not timestamp:
        raise refuse("missing_timestamp", f"the {TIMESTAMP} header is missing")
    if not message_id:
        raise refuse("missing_header", f"the {ID} header is missing")
    require_text(request.body, "Standard Webhooks")
    when = read_timestamp(timestamp)
    check_time(when, request)
    signed = b"%s.%d." % (header_bytes(message_id, ID), math.floor(when.timestamp())) + request.body
    expected = [new_hmac(key, signed, sha256).digest() for key in keys]
    for entry in signatures.split(" "):
        parts = entry.split(",")
        if len(parts) != 2:
            raise refuse("malformed_header", f"a {SIGNATURE} entry is not <version>,<signature>")
        version, encoded = parts
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded)
        except (binascii.Error, ValueError):
            raise refuse("malformed_header", f"a {SIGNATURE} entry is not base64") from None
        if any_equal(expected, given):
            return
    raise refuse("bad_signature", f"no v1 entry of the {SIGNATURE} header matches the body")
